/**
 * The benchmark table (Markdown) and its bar chart of ratios (SVG, drawn
 * here, no plotting dependency).
 *
 * @module
 */

/** One row of the table: a figure against its baseline, or a skip. */
export interface Row {
  /** "1a", "2b" …: the measure's number and the baseline's letter. */
  id: string;
  /** What is measured, e.g. "Accept rate: serve() vs raw Deno.listen". */
  measure: string;
  /** The module's figure, as text with units. */
  figure?: string;
  /** The baseline's figure, as text with units. */
  baseline?: string;
  /** figure ÷ baseline, in the row's own sense (see `lowerIsBetter`). */
  ratio?: number;
  /** The ratio to reach, when the issue sets one. */
  target?: number;
  /** For memory: a ratio below 1 is the good side. */
  lowerIsBetter?: boolean;
  /** What bounds the ratio, the runs' spread, or any caveat. */
  note?: string;
  /** Why the row has no figure (a missing peer, an unsupported system). */
  skipped?: string;
  /** A failure while measuring. */
  error?: string;
}

/** What the machine was during the run. */
export interface Machine {
  lines: string[];
}

function fmtRatio(row: Row): string {
  if (row.ratio === undefined || !Number.isFinite(row.ratio)) return "—";
  const text = `${row.ratio.toFixed(2)}×`;
  if (row.target === undefined) return text;
  const met = row.lowerIsBetter
    ? row.ratio <= row.target
    : row.ratio >= row.target;
  return `${text} ${met ? "✓" : "✗"}`;
}

function fmtTarget(row: Row): string {
  if (row.target === undefined) return "";
  return `${row.lowerIsBetter ? "≤" : "≥"} ${row.target.toFixed(2)}×`;
}

function cell(text: string | undefined): string {
  return (text ?? "").replaceAll("|", "\\|").replaceAll("\n", " ");
}

/** The Markdown table, with the machine under it. */
export function markdown(
  rows: Row[],
  machine: Machine,
  title: string,
): string {
  const out = [
    `# ${title}`,
    "",
    "| # | Measure | Figure | Baseline | Ratio | Target | Note |",
    "| - | ------- | ------ | -------- | ----- | ------ | ---- |",
  ];
  for (const row of rows) {
    const figure = row.skipped
      ? `skipped: ${row.skipped}`
      : row.error
      ? `error: ${row.error}`
      : row.figure;
    out.push(
      `| ${row.id} | ${cell(row.measure)} | ${cell(figure)} | ${
        cell(row.baseline)
      } | ${fmtRatio(row)} | ${fmtTarget(row)} | ${cell(row.note)} |`,
    );
  }
  out.push("", "Machine:", "");
  for (const line of machine.lines) out.push(`- ${line}`);
  out.push("");
  return out.join("\n");
}

function esc(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
    ">",
    "&gt;",
  );
}

/** A horizontal bar per row with a ratio; a line at 1× and a tick at target. */
export function svg(rows: Row[], title: string): string {
  const plotted = rows.filter((r) =>
    r.ratio !== undefined && Number.isFinite(r.ratio)
  );
  const barHeight = 22;
  const gap = 8;
  const left = 450;
  const width = 940;
  const plotWidth = width - left - 70;
  const top = 44;
  const height = top + plotted.length * (barHeight + gap) + 40;
  const max = Math.max(
    2,
    ...plotted.map((r) => r.ratio as number),
    ...plotted.map((r) => r.target ?? 0),
  );
  const x = (v: number) => left + (Math.min(v, max) / max) * plotWidth;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${
      width / 2
    }" y="22" text-anchor="middle" font-size="15" font-weight="bold">${
      esc(title)
    }</text>`,
  ];
  plotted.forEach((row, i) => {
    const y = top + i * (barHeight + gap);
    const ratio = row.ratio as number;
    const met = row.target === undefined
      ? undefined
      : row.lowerIsBetter
      ? ratio <= row.target
      : ratio >= row.target;
    const colour = met === undefined ? "#5b8def" : met ? "#3aa655" : "#d9534f";
    const label = `${row.id} ${row.measure}${
      row.lowerIsBetter ? " (lower: better)" : ""
    }`;
    parts.push(
      `<text x="${left - 8}" y="${
        y + barHeight / 2 + 4
      }" text-anchor="end" font-size="11">${
        esc(label.length > 84 ? `${label.slice(0, 81)}...` : label)
      }</text>`,
      `<rect x="${left}" y="${y}" width="${
        Math.max(1, x(ratio) - left)
      }" height="${barHeight}" fill="${colour}"/>`,
      `<text x="${x(ratio) + 4}" y="${y + barHeight / 2 + 4}">${
        ratio.toFixed(2)
      }×</text>`,
    );
    if (row.target !== undefined) {
      parts.push(
        `<line x1="${x(row.target)}" x2="${x(row.target)}" y1="${y - 2}" y2="${
          y + barHeight + 2
        }" stroke="black" stroke-width="2" stroke-dasharray="3,2"/>`,
      );
    }
  });
  const bottom = top + plotted.length * (barHeight + gap);
  parts.push(
    `<line x1="${x(1)}" x2="${x(1)}" y1="${
      top - 6
    }" y2="${bottom}" stroke="#333" stroke-width="1"/>`,
    `<text x="${x(1)}" y="${
      bottom + 16
    }" text-anchor="middle">1× (baseline)</text>`,
    `<text x="${left}" y="${
      bottom + 32
    }" fill="#555">Green: target met; red: missed; blue: no target. Dashed tick: the target.</text>`,
    "</svg>",
    "",
  );
  return parts.join("\n");
}
