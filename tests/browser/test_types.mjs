// The JS client's types, checked by TypeScript (tests/browser's
// devDependency, no browser needed):
// 1. types/readme_example.ts (the README's example, strict) and
//    types/wrong_usage.ts (uses that must fail, each under
//    @ts-expect-error) against clients/js/wtrelay.d.ts;
// 2. clients/js/wtrelay.js with checkJs, strict (its JSDoc, the DOM's
//    WebTransport), and examples/*.js with checkJs (not strict: DOM
//    lookups unchecked for null; the .d.ts where they import the module);
// 3. the checker is live: a file passing a string as a frame must fail.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const types = join(here, 'types');
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  console.error('FAIL: typescript is not installed in tests/browser (scripts/install-deps.sh runs npm ci there)');
  process.exit(1);
}

function run(args) {
  const r = spawnSync(process.execPath, [tsc, ...args], { encoding: 'utf8', cwd: here });
  return { code: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

function check(label, args) {
  const r = run(args);
  if (r.code !== 0) {
    console.error(`FAIL: ${label}: tsc exited with ${r.code}\n${r.out}`);
    process.exit(1);
  }
  console.log(`ok - ${label}`);
}

console.log(`# ${run(['--version']).out}`);
check('the README example and the wrong uses against wtrelay.d.ts (strict)',
  ['-p', join(types, 'tsconfig.json')]);
check('wtrelay.js, its JSDoc (checkJs, strict)', ['-p', join(types, 'tsconfig.module.json')]);
check('examples/*.js (checkJs)', ['-p', join(types, 'tsconfig.checkjs.json')]);

const dir = mkdtempSync(join(tmpdir(), 'wtrelay-types-'));
try {
  const mod = relative(dir, join(here, '../../clients/js/wtrelay.js')).split('\\').join('/');
  writeFileSync(join(dir, 'bad.ts'),
    `import { WtRelay } from '${mod}';\nnew WtRelay({ url: 'https://r/x' }).send('not a frame');\n`);
  const r = run(['--noEmit', '--strict', '--target', 'es2022', '--module', 'es2022',
    '--moduleResolution', 'bundler', '--lib', 'es2022,dom', join(dir, 'bad.ts')]);
  if (r.code === 0 || !/TS2345/.test(r.out)) {
    console.error(`FAIL: a string passed as a frame type-checks (tsc ${r.code}):\n${r.out}`);
    process.exit(1);
  }
  console.log('ok - a wrong type fails: a string passed to send()');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
