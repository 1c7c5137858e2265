// A rating-history chart as inline SVG: the conservative rating (mu - 3 sigma) as a line, mu as a dashed
// line, and the band mu ± 3 sigma. No library: scales, ticks and paths are computed here.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

/** About `count` round tick values from at or below `low` to at or above `high`. */
export function ticks(low, high, count = 5) {
  if (!(high > low)) return [low];
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const values = [];
  const end = Math.ceil(high / step - 1e-9) * step;
  for (let v = Math.floor(low / step + 1e-9) * step; v <= end + step * 1e-9; v += step) values.push(Number(v.toFixed(10)));
  return values;
}

/**
 * points: [{mu, sigma, rating, label}] oldest first (rating = mu - 3 sigma). Returns an <svg> that scales
 * to its container's width.
 */
export function ratingChart(points, { title = "Rating history", width = 640, height = 280 } = {}) {
  const pad = { left: 44, right: 12, top: 12, bottom: 34 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const highs = points.map((p) => p.mu + 3 * p.sigma);
  const lows = points.map((p) => p.mu - 3 * p.sigma);
  let low = Math.min(...lows, ...points.map((p) => p.rating));
  let high = Math.max(...highs);
  if (!(high > low)) {
    low -= 1;
    high += 1;
  }
  const yTicks = ticks(low, high, 5);
  low = Math.min(low, yTicks[0]);
  high = Math.max(high, yTicks.at(-1));
  const n = points.length;
  const x = (i) => pad.left + (n === 1 ? w / 2 : (i / (n - 1)) * w);
  const y = (v) => pad.top + (1 - (v - low) / (high - low)) * h;
  const line = (values) => values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");

  const last = points.at(-1);
  const summary = `${title}: ${n} game${n === 1 ? "" : "s"}; conservative rating from ${points[0].rating.toFixed(2)} `
    + `to ${last.rating.toFixed(2)} (mu ${last.mu.toFixed(2)}, sigma ${last.sigma.toFixed(2)}).`;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": summary,
    preserveAspectRatio: "xMidYMid meet",
  }, svg("title", {}, summary));

  const grid = svg("g", { class: "grid" });
  for (const t of yTicks) {
    grid.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(t), y2: y(t) }),
      svg("text", { x: pad.left - 6, y: y(t) + 4, "text-anchor": "end" }, Number.isInteger(t) ? t : t.toFixed(1)));
  }
  const xTicks = ticks(1, Math.max(n, 1), Math.min(6, n)).filter((t) => Number.isInteger(t) && t >= 1 && t <= n);
  for (const t of xTicks) {
    grid.append(svg("text", { x: x(t - 1), y: height - pad.bottom + 16, "text-anchor": "middle" }, t));
  }
  grid.append(svg("text", { x: pad.left + w / 2, y: height - 4, "text-anchor": "middle" }, "games played"));
  chart.append(grid);

  if (n === 1) {
    chart.append(svg("line", { class: "band-bar", x1: x(0), x2: x(0), y1: y(highs[0]), y2: y(lows[0]) }));
  }
  const band = [...highs.map((v, i) => [x(i), y(v)]), ...lows.map((v, i) => [x(i), y(v)]).reverse()];
  chart.append(svg("polygon", { class: "band", points: band.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ") }));
  chart.append(svg("polyline", { class: "mu", points: line(points.map((p) => p.mu)) }));
  chart.append(svg("polyline", { class: "conservative", points: line(points.map((p) => p.rating)) }));
  points.forEach((p, i) => chart.append(svg("circle", { class: "dot", cx: x(i), cy: y(p.rating), r: 3 },
    svg("title", {}, `${p.label ?? `game ${i + 1}`}: rating ${p.rating.toFixed(2)}, mu ${p.mu.toFixed(2)}, sigma ${p.sigma.toFixed(2)}`))));
  return chart;
}

/** The legend that goes with ratingChart (HTML, so it wraps on narrow screens). */
export function legend() {
  const item = (cls, text) => {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${cls}`;
    swatch.setAttribute("aria-hidden", "true");
    li.append(swatch, text);
    return li;
  };
  const ul = document.createElement("ul");
  ul.className = "legend";
  ul.append(item("conservative", "conservative rating μ − 3σ"), item("mu", "skill estimate μ"),
    item("band", "μ ± 3σ (where the true skill almost surely is)"));
  return ul;
}
