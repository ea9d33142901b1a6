import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "./fixtures/process.ts";

const RUN = new URL("../bench/run.ts", import.meta.url);
const IDS = [
  "1a",
  "1b",
  "1c",
  "1d",
  "1e",
  "1f",
  "1g",
  "2a",
  "2b",
  "2c",
  "2d",
  "2e",
  "3a",
  "3b",
  "4a",
  "4b",
  "4c",
  "4d",
  "4e",
  "5",
  "5b",
  "5c",
  "6a",
  "6b",
];

/** The table's rows, by their first cell. */
function tableRows(markdown: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of markdown.split("\n")) {
    if (!line.startsWith("| ") || line.startsWith("| #")) continue;
    if (line.startsWith("| -")) continue;
    const cells = line.slice(2, -2).split(/(?<!\\) \| /);
    rows.set(cells[0], cells);
  }
  return rows;
}

Deno.test("bench/run.ts --quick: every row filled or skipped with a reason", async () => {
  const out = await Deno.makeTempDir({ prefix: "bench-smoke-" });
  try {
    // run() kills the harness after its timeout: --quick takes ~20 s
    // idle; 120 s is room for a loaded machine, and a hang still fails.
    const result = await run(Deno.execPath(), [
      "run",
      "-A",
      fileURLToPath(RUN),
      "--quick",
      "--out",
      out,
    ], { timeout: 120_000 });
    const { stdout, stderr } = result;
    assert.equal(result.code, 0, `harness failed:\n${stdout}\n${stderr}`);

    const markdown = await Deno.readTextFile(join(out, "latest.md"));
    assert.ok(stdout.includes(markdown.trim()), "the table is printed");
    const rows = tableRows(markdown);
    assert.deepEqual([...rows.keys()], IDS);
    let measured = 0;
    for (const [id, cells] of rows) {
      const [, measure, figure, baseline, ratio] = cells;
      assert.ok(measure.length > 0, `${id}: no measure`);
      assert.ok(!figure.startsWith("error:"), `${id}: ${figure}`);
      const skip = figure.match(/^skipped: (.*)$/);
      if (skip) {
        assert.ok(skip[1].trim().length > 5, `${id}: skipped with no reason`);
        continue;
      }
      measured++;
      assert.match(figure, /\d/, `${id}: no figure`);
      assert.match(baseline, /\S/, `${id}: no baseline`);
      if (id !== "5") assert.match(ratio, /^\d+\.\d\d×/, `${id}: no ratio`);
    }
    // A harness that skips every row would pass the loop above: at least
    // the rows with no outside program (the module against Deno's own
    // API) must be measured.
    assert.ok(measured > 0, `every row was skipped:\n${markdown}`);
    assert.match(markdown, /Machine:/);

    const svg = await Deno.readTextFile(join(out, "latest.svg"));
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\s*$/);
    const plotted = [...rows.values()].filter((c) => /^\d/.test(c[4])).length;
    assert.equal(svg.match(/<rect x=/g)?.length ?? 0, plotted);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
