// Small DOM helpers: build elements, format numbers, times and player counts, read a turn's valid moves.

/** h("button", {class: "x", onclick: f, "data-move": "[4]"}, "text", child...) -> an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A number with `digits` decimals, or an em dash when there is none. */
export function num(value, digits = 2) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "—";
}

/** +1.23 / -0.40 */
export function signed(value, digits = 2) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "—";
  return `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(digits)}`;
}

/** A stored time (ISO, naive = UTC) as a short local date and time. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

/** "1 player", "2 players", "2–4 players" */
export function playerCount(counts) {
  const sorted = [...new Set(counts)].sort((a, b) => a - b);
  if (!sorted.length) return "";
  const low = sorted[0];
  const high = sorted.at(-1);
  const text = low === high ? `${low}` : `${low}–${high}`;
  return `${text} player${high === 1 ? "" : "s"}`;
}

/** The valid moves a turn offers: its `moves` list, else the ones its observation lists. */
export function turnMoves(turn) {
  if (!turn) return [];
  if (Array.isArray(turn.moves)) return turn.moves;
  const listed = (turn.observation ?? "").split(/Available Moves:|available actions are:/i);
  if (listed.length < 2) return [];
  const lastLine = listed.at(-1).split("\n")[0];
  return [...new Set(lastLine.match(/\[[^\]\n]+\]/g) ?? [])];
}

/** The route of an agent's page. */
export function agentLink(name, env) {
  return `#/agent/${encodeURIComponent(name)}${env ? `?env=${encodeURIComponent(env)}` : ""}`;
}
