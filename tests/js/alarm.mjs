// Opens the operations centre's dashboard in Debian's Chromium (headless, through
// playwright-core) and waits for the history-integrity panel to show a component's alarm
// row: what an operator sees when a store's disk is full. Written for tests/full_disk.rs.
//
//   node alarm.mjs BASE_URL COMPONENT
//
// Prints `ok <the row's text>`, or `FAIL …` and exits 1.
import { launch } from './browser.mjs';

const [base, component] = process.argv.slice(2);
if (!base || !component) {
  console.error('usage: node alarm.mjs BASE_URL COMPONENT');
  process.exit(2);
}
let browser;
const problems = [];
try {
  browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
  const row = page.locator(`#integrity tr[data-component="${component}"][data-alarm="true"]`);
  await row.waitFor({ state: 'visible', timeout: 30000 });
  const text = (await row.innerText()).replace(/\s+/g, ' ').trim();
  const red = await row.evaluate((r) => r.classList.contains('alarm'));
  if (!red) throw new Error(`the row is not marked as an alarm: ${text}`);
  console.log(`ok ${text}`);
  await browser.close();
} catch (e) {
  console.log(`FAIL ${e.message}${problems.length ? '\n' + problems.join('\n') : ''}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
