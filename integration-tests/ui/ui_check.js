// Drives Debian's chromium (headless, playwright-core) through the master's
// web UI while a run progresses: node ui_check.js BASE RUN BIG_RUN SHOTS_DIR GATE
// (GATE: a file it makes once the run's graph is drawn; the run's first task
// waits for it)
// prints one JSON line of what it saw; any failed check throws (exit 1).
"use strict";
const { chromium } = require("playwright-core");

const fs = require("fs");
const [base, run, big, shots, gate] = process.argv.slice(2);

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.TY_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
  const out = {};
  try {
    const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

    // the runs list, with the run in it
    await page.goto(`${base}/#/runs`);
    await page.waitForSelector(`body[data-ready=runs] tr[data-run="${run}"]`, { timeout: 20000 });
    await page.screenshot({ path: `${shots}/runs.png` });

    // the run: its graph, whose nodes change colour as the tasks move
    await page.click(`a[href="#/runs/${run}"]`);
    await page.waitForSelector("body[data-ready=run] svg g.node", { timeout: 20000 });
    const classes = () => page.$$eval("svg g.node", (gs) => gs.map((g) => g.getAttribute("class")));
    const first = await classes();
    out.nodes = first.length;
    out.first = first;
    fs.writeFileSync(gate, "");
    await page.waitForFunction(
      (before) => [...document.querySelectorAll("svg g.node")].some((g, i) => g.getAttribute("class") !== before[i]),
      first, { timeout: 30000, polling: 100 });
    out.changed = await classes();
    await page.screenshot({ path: `${shots}/run.png` });

    // a task's log, followed
    await page.click('svg g.node[data-task="count"]');
    await page.waitForFunction(() => (document.querySelector("#log")?.textContent || "").includes("line 2"),
      null, { timeout: 30000 });
    out.log = await page.$eval("#log", (e) => e.textContent);
    await page.screenshot({ path: `${shots}/log.png` });

    // its metrics as a chart
    await page.click('button[data-tab="metrics"]');
    await page.waitForSelector('svg.chart[data-metric="loss"] polyline', { timeout: 20000 });
    out.points = await page.$eval('svg.chart[data-metric="loss"] polyline', (p) => p.getAttribute("points").trim().split(" ").length);
    await page.screenshot({ path: `${shots}/metrics.png` });

    // the run ends: every node green
    await page.waitForFunction(() => [...document.querySelectorAll("svg g.node")].every((g) => g.classList.contains("s-succeeded")),
      null, { timeout: 60000, polling: 200 });
    await page.click('button[data-tab="artifacts"]');
    await page.waitForSelector("#tab a[download]", { timeout: 20000 });
    out.artifact = await page.$eval("#tab a[download]", (a) => a.getAttribute("href"));
    const got = await page.evaluate(async (href) => (await fetch(href)).text(), out.artifact);
    out.artifactText = got;

    // workers and pipelines
    await page.click('a[data-nav="workers"]');
    await page.waitForSelector("body[data-ready=workers] #workers tr", { timeout: 20000 });
    out.workers = await page.$$eval("#workers tr", (rs) => rs.length);
    await page.screenshot({ path: `${shots}/workers.png` });
    await page.click('a[data-nav="pipelines"]');
    await page.waitForSelector("body[data-ready=pipelines] #pipelines tr", { timeout: 20000 });
    out.pipelines = await page.$$eval("#pipelines td:first-child", (ts) => ts.map((t) => t.textContent));
    await page.screenshot({ path: `${shots}/pipelines.png` });

    // schedules, and models with their versions
    await page.click('a[data-nav="schedules"]');
    await page.waitForSelector("body[data-ready=schedules] #schedules tr", { timeout: 20000 });
    out.schedules = await page.$$eval("#schedules td:first-child", (ts) => ts.map((t) => t.textContent));
    await page.click('a[data-nav="models"]');
    await page.waitForSelector("body[data-ready=models] #models a", { timeout: 20000 });
    await page.click("#models a");
    await page.waitForSelector("body[data-ready=model] #versions tr", { timeout: 20000 });
    out.modelRun = await page.$eval("#versions td:nth-child(3)", (t) => t.textContent);
    await page.screenshot({ path: `${shots}/models.png` });

    // a run of 1,000 tasks: from navigation to its graph drawn
    const p2 = await browser.newPage({ viewport: { width: 1366, height: 768 } });
    p2.on("pageerror", (e) => errors.push(String(e)));
    const t0 = Date.now();
    await p2.goto(`${base}/#/runs/${big}`);
    await p2.waitForSelector("body[data-ready=run] svg g.node", { timeout: 30000 });
    out.bigLoadMs = Date.now() - t0;
    out.bigGraphMs = await p2.evaluate(() => window.tyGraphMs);
    out.bigNodes = await p2.$$eval("svg g.node", (gs) => gs.length);
    // still answering: a click selects a task at once
    const t1 = Date.now();
    await p2.click('svg g.node[data-task="t0"]');
    await p2.waitForSelector("#panel h2", { timeout: 10000 });
    out.bigClickMs = Date.now() - t1;
    await p2.screenshot({ path: `${shots}/big.png` });
    out.errors = errors;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => { console.error(e); process.exit(1); });
