// Drives headless Chromium through the headcount console. Run by
// crates/cli/tests/console.rs against a real `headcount serve` with the demo data:
//
//   node tests/browser/console.mjs BASE KEY READER_KEY OTHER_KEY SCREENSHOT_DIR
//
// KEY has every permission in the demo workspace, READER_KEY only segments.list,
// OTHER_KEY belongs to another workspace. Prints "ok: …" per check and exits 1 with
// the reason on the first failure.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, key, readerKey, otherKey, shots] = process.argv.slice(2);
if (!shots) {
  console.error("usage: console.mjs BASE KEY READER_KEY OTHER_KEY SCREENSHOT_DIR");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const executablePath = process.env.HEADCOUNT_CHROMIUM || "/usr/bin/chromium";
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

async function api(path, body) {
  const response = await fetch(base + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function signIn(page, secret) {
  await page.goto(base + "/console");
  await page.fill("input[name=key]", secret);
  await page.click("button:has-text('Sign in')");
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, name), fullPage: true });
}

const browser = await chromium.launch({ executablePath, args, headless: true });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);

  // Sign in.
  await page.goto(base + "/console");
  check(await page.locator("input[name=key]").count() === 1, "the sign-in form has a field named key");
  await shot(page, "sign-in.png");
  await page.fill("input[name=key]", "hc_not-a-real-key");
  await page.click("button:has-text('Sign in')");
  check((await page.textContent("#sign-in-error")).includes("unknown or revoked"), "a wrong key is refused");
  await page.fill("input[name=key]", key);
  await page.click("button:has-text('Sign in')");
  await page.waitForSelector("h1:has-text('Segments')");
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "hc_session");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict");
  check(!session.value.includes(key) && session.value.length === 64, "the cookie holds a random id, not the key");

  // The segments page lists the demo's segments, as the API does.
  const listed = await api("/segments/list");
  const rows = page.locator("table.segments tbody tr");
  check(await rows.count() === listed.body.segments.length && listed.body.segments.length > 5,
    `the segments page lists the demo's ${listed.body.segments.length} segments`);
  for (const s of listed.body.segments) {
    const row = page.locator(`tr[data-segment="${s.id}"]`);
    check(await row.count() === 1 && (await row.textContent()).includes(s.name), `segment ${s.name} is listed with its name and id`);
  }
  check(await page.locator("button:has-text('Sign out')").count() === 1, "a Sign out control is shown");
  await shot(page, "segments.png");
  await page.fill("#q", "french");
  await page.click("button:has-text('Apply')");
  const filtered = await page.locator("table.segments tbody tr").count();
  const french = listed.body.segments.filter((s) => s.name.toLowerCase().includes("french")).length;
  check(filtered === french && french > 0, `filtering by name keeps the ${french} French segments`);
  await page.goto(base + "/console?sort=size&dir=desc");
  const sizes = await page.locator("table.segments tbody td[data-label=Today]").allTextContents();
  const numbers = sizes.map((t) => Number(t.trim()));
  check(numbers.every((n, i) => i === 0 || numbers[i - 1] >= n), "sorting by today's size orders the rows");

  // A segment's page: the chart's numbers are data_series's.
  const target = listed.body.segments.find((s) => s.name === "French users") || listed.body.segments[0];
  await page.goto(base + "/console");
  await page.click(`tr[data-segment="${target.id}"] a`);
  await page.waitForSelector(`h1:has-text("${target.name}")`);
  check(page.url().endsWith(`/console/segments/${target.id}`), "a segment's page is /console/segments/{id}");
  const series = await api(`/segments/data_series?segment_id=${target.id}&length=100`);
  const days = series.body.data;
  check(await page.locator("g.day").count() === 100 && await page.locator("table.days tbody tr").count() === 100,
    "the chart and the table have 100 days");
  for (const point of [days[0], days[50], days[98]]) {
    const title = await page.locator(`g.day[data-day="${point.time}"] title`).textContent();
    check(title === `${point.time}: ${point.size}`, `the chart's point of ${point.time} says ${point.size}, as data_series`);
    const row = await page.locator(`table.days tr[data-day="${point.time}"]`).textContent();
    check(row.includes(point.time) && row.includes(String(point.size)), `the table's row of ${point.time} says ${point.size}`);
  }
  await page.focus(`g.day[data-day="${days[98].time}"]`);
  check(await page.locator(`g.day[data-day="${days[98].time}"] text.tip`).isVisible(), "focusing a day shows its date and size");
  await page.keyboard.press("ArrowLeft");
  check(await page.evaluate(() => document.activeElement.getAttribute("data-day")) === days[97].time,
    "the left arrow moves to the day before");
  const details = await api(`/segments/details?segment_id=${target.id}`);
  check((await page.textContent("main")).includes(details.body.description), "the filter is shown in plain English");
  check((await page.textContent("#curl")).includes(`segment_id=${target.id}`), "the curl command names the segment");
  await shot(page, "segment.png");
  await page.click("nav.range a:has-text('7 days')");
  check(await page.locator("g.day").count() === 7, "the 7-day view has 7 days");
  const other = listed.body.segments.find((s) => s.id !== target.id);
  await page.selectOption("#compare", other.id);
  await page.click("button:has-text('Add to the chart')");
  check(await page.locator("polyline.line").count() === 2 && (await page.textContent("table.days thead")).includes(other.name),
    "a second segment joins the chart");
  await page.goto(`${base}/console/segments/${target.id}?from=${days[10].time}&to=${days[19].time}`);
  check(await page.locator("g.day").count() === 10, "a date range shows its 10 days");

  // Create: an error at its path, then a preview, then the segment.
  await page.goto(base + "/console/segments/new");
  check(await page.locator("textarea[name=filter]").count() === 1 && await page.locator("input[name=name]").count() === 1,
    "the new-segment form has name and a filter textarea");
  await page.fill("input[name=name]", "Console test");
  const bad = { all: [{ attribute: "country", op: "eq", value: "FR" }, { attribute: "plan", op: "bogus", value: 1 }] };
  await page.fill("textarea[name=filter]", JSON.stringify(bad, null, 2));
  await page.click("button:has-text('Create segment')");
  const apiError = await api("/segments/create", { name: "x", filter: bad });
  const shown = await page.textContent("#filter-error");
  check(apiError.status === 400 && shown === apiError.body.message, `the API's error is shown at the filter: ${shown}`);
  check((await page.textContent("mark#filter-error-at")).includes("bogus"), "the node at the error's path is marked");
  await shot(page, "new-error.png");
  const good = { all: [{ attribute: "country", op: "eq", value: "FR" }, { event: "session_start", op: "gte", value: 1, within_days: 30 }] };
  await page.fill("textarea[name=filter]", JSON.stringify(good, null, 2));
  await page.click("button:has-text('Preview')");
  await page.waitForSelector("#preview");
  const preview = await api("/segments/preview", { filter: good });
  check(Number(await page.textContent("#preview-live")) === preview.body.live_size,
    `the preview's size today is the API's (${preview.body.live_size})`);
  const previewDay = preview.body.data[20];
  check((await page.locator(`#preview g.day[data-day="${previewDay.time}"] title`).textContent()) === `${previewDay.time}: ${previewDay.size}`,
    "the preview's chart has the API's 30 days");
  check((await api("/segments/list")).body.segments.length === listed.body.segments.length, "a preview stores nothing");
  await shot(page, "new-preview.png");
  await page.click("button:has-text('Create segment')");
  await page.waitForSelector("h1:has-text('Console test')");
  const created = page.url().split("/").pop();
  check((await api(`/segments/details?segment_id=${created}`)).body.name === "Console test", "the segment is created");

  // Edit.
  await page.click("a:has-text('Edit')");
  await page.fill("input[name=name]", "Console test, edited");
  await page.click("button:has-text('Save changes')");
  await page.waitForSelector("h1:has-text('Console test, edited')");
  check((await api(`/segments/details?segment_id=${created}`)).body.name === "Console test, edited", "the segment is renamed");

  // CSRF: a POST without the token, or with another, is refused.
  const csrf = await page.getAttribute("form.signout input[name=csrf]", "value");
  for (const [what, form] of [["without a token", {}], ["with a wrong token", { csrf: "0".repeat(64) }]]) {
    const r = await page.request.post(`${base}/console/segments/${created}/archive`, { form, maxRedirects: 0 });
    check(r.status() === 403, `archiving ${what} is refused (403)`);
    const c = await page.request.post(`${base}/console/segments/new`, { form: { ...form, name: "x", filter: "{\"all\":[]}", intent: "save" }, maxRedirects: 0 });
    check(c.status() === 403, `creating ${what} is refused (403)`);
  }
  check((await api("/segments/list")).body.segments.some((s) => s.id === created), "the refused POSTs changed nothing");
  check(csrf.length === 64, "forms carry the session's token");

  // Archive, after a confirmation.
  await page.click("a:has-text('Archive')");
  await page.waitForSelector("button:has-text('Archive segment')");
  await shot(page, "archive.png");
  await page.click("button:has-text('Archive segment')");
  await page.waitForSelector("h1 .badge:has-text('archived')");
  check(!(await api("/segments/list")).body.segments.some((s) => s.id === created), "the segment is archived");

  // The phone's width.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  await phone.addCookies([{ ...session }]);
  const small = await phone.newPage();
  await small.goto(base + "/console");
  const width = await small.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 390, `the segments page fits a phone's width (${width}px)`);
  await shot(small, "segments-phone.png");
  await phone.close();

  // Sign out: the session ends.
  await page.click("button:has-text('Sign out')");
  await page.waitForSelector("input[name=key]");
  await page.goto(`${base}/console/segments/${target.id}`);
  check(await page.locator("input[name=key]").count() === 1, "after signing out, pages ask to sign in");
  const stale = await browser.newContext();
  await stale.addCookies([{ ...session }]);
  const old = await stale.newPage();
  await old.goto(base + "/console");
  check(await old.locator("input[name=key]").count() === 1, "the old session cookie no longer works");
  await stale.close();

  // A key without the permissions.
  const reader = await browser.newContext();
  const rp = await reader.newPage();
  await signIn(rp, readerKey);
  await rp.waitForSelector("h1:has-text('Segments')");
  check((await rp.textContent("main")).includes("lacks the permission segments.data_series"), "a key without data_series sees no sizes");
  check(await rp.locator("a:has-text('New segment')").count() === 0, "a key without segments.create gets no New segment link");
  const denied = await rp.goto(`${base}/console/segments/${target.id}`);
  check(denied.status() === 403 && (await rp.textContent("main")).includes("segments.details"), "a segment's page needs segments.details (403)");
  const denied2 = await rp.goto(`${base}/console/segments/new`);
  check(denied2.status() === 403, "the new-segment form needs segments.create (403)");
  await shot(rp, "denied.png");
  await reader.close();

  // A key of another workspace sees none of this one.
  const others = await browser.newContext();
  const op = await others.newPage();
  await signIn(op, otherKey);
  await op.waitForSelector("h1:has-text('Segments')");
  check(await op.locator("table.segments tbody tr").count() === 0, "another workspace's key lists none of the demo's segments");
  const hidden = await op.goto(`${base}/console/segments/${target.id}`);
  check(hidden.status() === 404, "another workspace's segment is not found (404)");
  const hiddenArchive = await op.request.post(`${base}/console/segments/${target.id}/archive`, {
    form: { csrf: await op.getAttribute("form.signout input[name=csrf]", "value") }, maxRedirects: 0 });
  check(hiddenArchive.status() === 404, "another workspace's segment cannot be archived (404)");
  await others.close();

  console.log("console: all checks passed");
} catch (e) {
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
