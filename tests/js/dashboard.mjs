// Drives Debian's Chromium (headless, through playwright-core) through the operations
// centre's dashboard of a running stack, as a person would, and checks what it shows against
// the API. Written for tests/dashboard.rs, which starts the stack and publishes an event when
// asked: this script prints `ready-for-live` and reads one line (`published <ward slug>`)
// from stdin before checking the live feed.
//
//   node dashboard.mjs BASE_URL SCREENSHOT_DIR
//
// Prints one `ok …` line per check; exits 1 with `FAIL …` at the first failure.
import { executablePath, launch } from './browser.mjs';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node dashboard.mjs BASE_URL SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

let browser;
const fail = async (msg) => {
  console.log(`FAIL ${msg}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
};
const ok = (msg) => console.log(`ok ${msg}`);
const check = async (cond, msg) => (cond ? ok(msg) : fail(msg));
const api = async (path) => {
  const r = await fetch(base + path);
  if (!r.ok) await fail(`${path}: HTTP ${r.status}`);
  return r.json();
};
const get = (obj, path) => path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
// A number as shown in Vietnamese: `1.108`, `93,7%`, `57,1`.
const parseVi = (text) => Number(text.replace(/\s|%/g, '').replace(/\./g, '').replace(',', '.'));

const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

try {
  browser = await launch();
} catch (e) {
  await fail(`cannot start Chromium at ${executablePath} (./scripts/test installs Debian's chromium): ${e.message}`);
}
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
const problems = [];
page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('requestfailed', (r) => {
  // The event stream is cut when the page closes; anything else failing is a problem.
  if (!r.url().endsWith('/api/v1/live')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
});
page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`); });
// Nothing may leave the machine: every request goes to the stack.
page.on('request', (r) => {
  if (!r.url().startsWith(base) && !r.url().startsWith('data:')) problems.push(`request outside the stack: ${r.url()}`);
});

const renders = async () => Number(await page.evaluate(() => document.body.dataset.renders || 0));
const ready = async (after = 0) => {
  await page.waitForFunction((n) => document.body.dataset.state === 'ready'
    && Number(document.body.dataset.renders || 0) > n, after, { timeout: 20000 });
};

await page.goto(base + '/', { waitUntil: 'domcontentloaded' });
await ready();
await check(problems.length === 0, `the page loads with no console error (${problems.join('; ') || 'none'})`);
await check(await page.evaluate(() => document.documentElement.lang) === 'vi', 'Vietnamese is the default language');
try {
  await page.waitForFunction(() => document.querySelectorAll('#feed li').length > 0, null, { timeout: 10000 });
  ok('the live feed shows the latest events at once');
} catch (e) {
  await fail('the live feed is empty after loading');
}

// Every KPI shown equals /api/v1/kpi for the year shown.
const compareKpis = async () => {
  const year = await page.evaluate(() => document.body.dataset.year);
  const kpi = await api(`/api/v1/kpi?year=${year}`);
  const cards = await page.$$eval('[data-kpi]', (els) => els.map((e) => ({
    path: e.dataset.kpi,
    value: JSON.parse(e.querySelector('.value').dataset.value),
    text: e.querySelector('.value').textContent,
  })));
  const wrong = [];
  for (const c of cards) {
    const want = get(kpi, c.path);
    const shown = parseVi(c.text);
    const ratio = c.path.endsWith('ratio');
    const expectedShown = ratio ? Math.round(want * 1000) / 10 : Math.round(want * 10) / 10;
    if (c.value !== want || shown !== expectedShown) wrong.push(`${c.path}: page ${c.text} (${c.value}), API ${want}`);
  }
  return { year, kpi, cards, wrong };
};
let shown = await compareKpis();
for (let i = 0; i < 5 && shown.wrong.length; i++) {
  // Figures can move between the page's refresh and this read: let the page catch up.
  await ready(await renders() - 1).catch(() => {});
  await page.waitForTimeout(1500);
  shown = await compareKpis();
}
await check(shown.wrong.length === 0, `every KPI card equals /api/v1/kpi?year=${shown.year} (${shown.cards.length} cards${shown.wrong.length ? ': ' + shown.wrong.join('; ') : ''})`);
const paths = shown.cards.map((c) => c.path);
for (const p of ['documents.electronic_ratio', 'field_reports.total', 'field_reports.resolved', 'field_reports.on_time_ratio',
  'sso.registered_users', 'sso.active_users', 'open_data.datasets', 'meetings.meetings', 'meetings.wards_connected']) {
  await check(paths.includes(p), `a card shows ${p}`);
}

// Names, not codes.
const panels = await api(`/api/v1/dashboard?year=${shown.year}`);
const text = await page.evaluate(() => document.body.innerText);
const slugs = panels.wards.map((w) => w.ward);
const stats = await api('/api/v1/field-reports/stats');
const codes = Object.keys(stats.by_category || {});
const statuses = panels.statuses.map((s) => s.status);
const english = ['closed', 'in_progress', 'fixed', 'open', 'duplicate', 'unable_to_fix', 'investigating', 'not_responsible', 'acknowledged',
  'Cannot read', 'field reports', 'sign-on activity', 'undefined', 'NaN', 'null', '[object Object]'];
const visible = (word) => new RegExp(`(^|[^\\p{L}\\p{N}_-])${word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^\\p{L}\\p{N}_-])`, 'u').test(text);
const leaked = [...slugs, ...codes, ...statuses, ...english].filter(visible);
await check(leaked.length === 0, `no slug, code or English status in the visible text (${leaked.join(', ') || 'none'})`);
const names = panels.wards.map((w) => w.name);
const missing = names.filter((n) => !text.includes(n.replace(/^(Phường|Xã) /, '')));
await check(names.length === 18 && missing.length === 0, `the 18 wards and communes are named in Vietnamese (${missing.join(', ') || 'all'})`);
const viNumber = (n) => new Intl.NumberFormat('vi-VN').format(n);
const counts = shown.cards.filter((c) => !c.path.endsWith('ratio'));
await check(counts.every((c) => c.text === viNumber(c.value)), 'every count is written the Vietnamese way');

// The map.
const tiles = await page.$$eval('#map [data-ward]', (els) => els.map((e) => ({
  ward: e.dataset.ward, label: e.getAttribute('aria-label'), title: e.querySelector('title')?.textContent })));
await check(tiles.length === 18 && new Set(tiles.map((t) => t.ward)).size === 18, `the map has 18 areas (${tiles.length})`);
const sample = panels.wards[0];
const tile = tiles.find((t) => t.ward === sample.ward);
await check(tile.title.startsWith(`${sample.name}: ${viNumber(sample.received)} phản ánh,`)
  && tile.title.includes(`${viNumber(sample.overdue)} quá hạn`)
  && tile.title.includes(`(${viNumber(sample.population)} dân)`) && sample.population >= 1000
  && viNumber(sample.population).includes('.'),
  `hovering ${sample.name} shows its figures (${tile.title})`);
await page.hover(`#map [data-ward="${sample.ward}"]`);
await check((await page.textContent('#ward-detail')).includes(sample.name), 'the figures appear beside the map on hover');

await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });
ok(`screenshot ${shots}/dashboard.png`);

// A click on a ward filters the other panels.
const busiest = [...panels.wards].sort((a, b) => b.open - a.open)[0];
let before = await renders();
await page.click(`#map [data-ward="${busiest.ward}"]`);
await ready(before);
const filtered = await page.evaluate(() => ({
  ward: document.body.dataset.ward,
  rows: [...document.querySelectorAll('#oldest tbody td[data-ward], #overdue tbody td[data-ward]')].map((td) => td.dataset.ward),
  scope: document.querySelector('#h-trends [data-scope]').textContent,
  filter: document.getElementById('filter-name').textContent,
  pressed: document.querySelector('#map [aria-pressed="true"]')?.dataset.ward,
  links: document.querySelector('[data-links="overdue"] a').getAttribute('href'),
}));
const wardPanels = await api(`/api/v1/dashboard?year=${shown.year}&ward=${busiest.ward}`);
await check(filtered.ward === busiest.ward && filtered.pressed === busiest.ward, `a click on ${busiest.name} selects it`);
await check(filtered.rows.length > 0 && filtered.rows.every((w) => w === busiest.ward),
  `the report lists show only ${busiest.name} (${filtered.rows.length} rows)`);
await check(filtered.scope.includes(busiest.name) && filtered.filter === busiest.name, 'the panels say which ward they show');
await check(filtered.links.includes(`ward=${busiest.ward}`), 'the panels\' JSON and CSV links follow the filter');
const trendTotal = wardPanels.trends.reduce((a, m) => a + m.reports_received, 0);
await check(trendTotal === busiest.received, `the trends are ${busiest.name}'s (${trendTotal} reports)`);
await page.screenshot({ path: `${shots}/dashboard-ward.png`, fullPage: true });
before = await renders();
await page.keyboard.press('Escape');
await page.focus('#clear-filter');
await page.keyboard.press('Enter');
await ready(before);
await check(await page.evaluate(() => document.body.dataset.ward) === '', 'the filter is cleared from the keyboard');

// The CSV link of a panel answers CSV.
const csv = await fetch(base + '/api/v1/dashboard/wards?format=csv');
await check(csv.headers.get('content-type').startsWith('text/csv') && (await csv.text()).split('\n').length >= 19, 'the map panel\'s CSV has 18 rows');

// Keyboard: a ward tile can be reached and chosen without a mouse.
before = await renders();
await page.focus(`#map [data-ward="${sample.ward}"]`);
await page.keyboard.press('Enter');
await ready(before);
await check(await page.evaluate(() => document.body.dataset.ward) === sample.ward, 'Enter on a focused ward filters to it');
before = await renders();
await page.keyboard.press('Enter');
await ready(before);
await check(await page.evaluate(() => document.body.dataset.ward) === '', 'Enter again on the same ward (still focused) clears the filter');

// History integrity.
const integrity = await api('/api/v1/integrity');
const rows = await page.$$eval('#integrity tbody tr', (els) => els.map((e) => ({
  stream: e.dataset.stream, alarm: e.dataset.alarm, replay: e.dataset.replay === 'true' })));
const verifiedRows = rows.filter((r) => !r.replay);
await check(integrity.verifying && verifiedRows.length > 0,
  `the integrity panel lists every verified stream (${verifiedRows.length})`);
await check(verifiedRows.length === integrity.streams.length
  && verifiedRows.every((r) => r.alarm === (integrity.streams.find((s) => s.stream === r.stream)?.alarm != null ? 'true' : 'false'))
  && rows.filter((r) => r.replay).length === Object.keys(integrity.replay_alarms).length,
'the integrity panel is red exactly where the API raises an alarm');

// Live: an event published now appears in the feed and moves its counter.
const total = Number(JSON.parse(await page.$eval('[data-kpi="field_reports.total"] .value', (e) => e.dataset.value)));
const liveBefore = Number(await page.$eval('#live-count', (e) => e.dataset.value));
const sequenceBefore = (await api('/api/v1/kpi')).stream_sequences.FIELD_REPORTS;
await page.waitForFunction(() => document.getElementById('live-state').classList.contains('on'), null, { timeout: 10000 });
console.log('ready-for-live');
const line = await nextLine();
const ward = line.split(' ')[1];
const wardLabel = panels.wards.find((w) => w.ward === ward).name;
try {
  await page.waitForFunction(([w, after]) => [...document.querySelectorAll('#feed li[data-stream="FIELD_REPORTS"]')]
    .some((li) => Number(li.dataset.sequence) > after && li.textContent.includes('Phản ánh mới') && li.textContent.includes(w)),
  [wardLabel, sequenceBefore], { timeout: 20000 });
  ok(`the new report appears in the live feed (${wardLabel})`);
} catch (e) {
  await fail(`the new report never appeared in the live feed: ${await page.textContent('#feed')}`);
}
await check(Number(await page.$eval('#live-count', (e) => e.dataset.value)) > liveBefore, 'the live counter moved');
try {
  await page.waitForFunction((n) => Number(JSON.parse(document.querySelector('[data-kpi="field_reports.total"] .value').dataset.value)) === n + 1,
    total, { timeout: 20000 });
  ok(`the reports received card moved from ${total} to ${total + 1}`);
} catch (e) {
  await fail(`the reports received card did not move from ${total}`);
}

// English on request.
await page.click('#lang');
await check(await page.evaluate(() => document.documentElement.lang) === 'en'
  && (await page.textContent('#h-map')).includes('Wards'), 'the English toggle translates the page');

// History integrity in red: the operator recreates a stream under its read model.
await page.click('#lang');
await page.waitForFunction(() => document.documentElement.lang === 'vi');
console.log('ready-for-alarm');
const recreated = (await nextLine()).split(' ')[1];
try {
  await page.waitForFunction((s) => {
    const td = document.querySelector(`#integrity tr[data-stream="${s}"][data-alarm="true"] td.alarm`);
    return td && getComputedStyle(td).color === 'rgb(179, 38, 30)';
  }, recreated, { timeout: 45000 });
  ok(`the integrity panel turns red for ${recreated} recreated under its read model`);
} catch (e) {
  await fail(`no red alarm for ${recreated}: ${await page.textContent('#integrity')}`);
}
await page.screenshot({ path: `${shots}/dashboard-alarm.png`, fullPage: true });

await check(problems.length === 0, `no console error, failed request or outside request during the whole visit (${problems.join('; ') || 'none'})`);
await browser.close();
process.exit(0);
