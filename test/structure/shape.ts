// Measures the source tree against issue #11's proportions: files, functions
// and where SQL may be written. Used by shape.test.ts and runnable alone
// (`bun test/structure/shape.ts`) to list what is over.
import { readFileSync } from 'node:fs'
import { Glob } from 'bun'
import ts from 'typescript'

export const MAX_FILE_LINES = 300
export const MAX_FUNCTION_LINES = 80

export type Finding = { where: string; what: string; lines?: number }

const SQL_BUILDERS = /\b(selectFrom|insertInto|updateTable|deleteFrom)\b|\bsql`/
const SQL_HOMES = /(^|\/|-)repository\.ts$|^src\/db\//

export function sourceFiles(root = '.') {
  return [...new Glob('src/**/*.ts').scanSync(root)].sort()
}

function functionName(node: ts.Node): string {
  const named = (node as { name?: ts.Node }).name
  if (named) return named.getText()
  const parent = node.parent
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent)) {
    return parent.name.getText()
  }
  return '<anonymous>'
}

export function measure(root = '.'): Finding[] {
  const findings: Finding[] = []
  for (const path of sourceFiles(root)) {
    const text = readFileSync(`${root}/${path}`, 'utf8')
    const fileLines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0)
    if (fileLines > MAX_FILE_LINES) {
      findings.push({ where: path, what: 'file', lines: fileLines })
    }
    if (!SQL_HOMES.test(path) && SQL_BUILDERS.test(text)) {
      findings.push({ where: path, what: 'sql outside a repository' })
    }
    const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true)
    const visit = (node: ts.Node) => {
      if (ts.isFunctionLike(node) && (node as { body?: ts.Node }).body) {
        const start = source.getLineAndCharacterOfPosition(node.getStart()).line
        const end = source.getLineAndCharacterOfPosition(node.getEnd()).line
        const lines = end - start + 1
        if (lines > MAX_FUNCTION_LINES) {
          findings.push({
            where: `${path}:${start + 1}`,
            what: `function ${functionName(node)}`,
            lines,
          })
        }
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  return findings
}

if (import.meta.main) {
  const findings = measure()
  for (const f of findings) {
    console.log(`${f.lines ?? ''}\t${f.what}\t${f.where}`)
  }
  console.log(`${findings.length} over`)
}
