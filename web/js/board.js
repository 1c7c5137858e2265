// A board you click: the latest board message in monospace, where every token that names a valid move
// (the move's text inside its brackets, e.g. `4` for `[4]` or the column number of `[col 4]`) is a button.

import { h } from "./dom.js";

/** token on the board -> the move it sends, for `moves` like ["[0]", "[4]"] or ["[col 3]"]. */
export function moveTokens(moves) {
  const exact = new Map();
  const loose = new Map();
  for (const move of moves) {
    const inner = /^\[(.+)\]$/.exec(move.trim())?.[1]?.trim();
    if (!inner) continue;
    if (!/\s/.test(inner) && !exact.has(inner)) exact.set(inner, move);
    const tail = /^[A-Za-z]+\s+(\S+)$/.exec(inner)?.[1]; // "col 3" -> "3"
    if (tail && !loose.has(tail)) loose.set(tail, move);
  }
  return { exact, loose };
}

/**
 * The board as a <pre>: with `moves` and `onMove`, tokens naming a valid move become buttons carrying
 * `data-move`; without them (not your turn, spectators, replays), plain text.
 */
export function renderBoard(text, { moves = [], onMove = null, id = "board", label = "Board" } = {}) {
  const pre = h("pre", { id, class: "board", "aria-label": label, tabindex: onMove ? null : 0 });
  const { exact, loose } = moveTokens(onMove ? moves : []);
  const present = new Set(text.split(/\s+/));
  const map = [...exact.keys()].some((t) => present.has(t)) ? exact : loose;
  if (!map.size) {
    pre.textContent = text;
    return pre;
  }
  let clickable = 0;
  for (const part of text.split(/(\s+)/)) {
    const move = map.get(part);
    if (move && part) {
      clickable++;
      pre.append(h("button", {
        type: "button", class: "cell", "data-move": move, "aria-label": `Play ${move}`, title: `Play ${move}`,
        onclick: () => onMove(move),
      }, part));
    } else {
      pre.append(part);
    }
  }
  if (clickable) pre.classList.add("clickable");
  return pre;
}
