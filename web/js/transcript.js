// What a seat (or a spectator) has been shown, made readable: messages grouped by sender and kind,
// boards in monospace, private messages marked, the exact text behind a <details> toggle.

import { h } from "./dom.js";

const KINDS = {
  PROMPT: "rules",
  GAME_MESSAGE: "message",
  GAME_BOARD: "board",
  GAME_ADMIN: "notice",
  PLAYER_ACTION: "move",
  GAME_ACTION_DESCRIPTION: "what happened",
};

const MONOSPACE = new Set(["GAME_BOARD", "PROMPT"]);

/**
 * A raw observation ("[GAME] ...", "[Player 1] [4]") as messages, for text without structure (stored turns,
 * a server that sends no `messages`). Kinds are guessed; nothing is marked private.
 */
export function parseObservation(text) {
  const messages = [];
  let current = null;
  for (const line of (text ?? "").split("\n")) {
    const marker = /^\[(GAME|Player (\d+))\] ?(.*)$/.exec(line);
    if (marker) {
      current = { sender: marker[2] === undefined ? -1 : Number(marker[2]), text: marker[3], kind: "" };
      messages.push(current);
    } else if (current) {
      current.text += `\n${line}`;
    } else if (line.trim()) {
      current = { sender: -1, text: line, kind: "PROMPT" };
      messages.push(current);
    }
  }
  messages.forEach((m, i) => {
    m.text = m.text.replace(/\s+$/, "");
    m.kind ||= guessKind(m, i);
  });
  return messages;
}

function guessKind(message, index) {
  if (message.sender >= 0) return "PLAYER_ACTION";
  const firstLine = message.text.split("\n")[0];
  if (index === 0 || /^You are Player \d/.test(message.text)) return "PROMPT";
  if (/board/i.test(firstLine) && message.text.includes("\n")) return "GAME_BOARD";
  if (/invalid move|has won|wins|draw|game over/i.test(message.text)) return "GAME_ADMIN";
  if (/^Player \d+ /.test(message.text)) return "GAME_ACTION_DESCRIPTION";
  return "GAME_MESSAGE";
}

/** The messages a game page shows: the latest turn's (or its parsed observation), then public ones since. */
export function gameMessages(turn, events) {
  if (!turn) return [...events];
  const base = Array.isArray(turn.messages) && turn.messages.length ? turn.messages : parseObservation(turn.observation);
  return [...base, ...events];
}

/** The latest board message, if any. */
export function latestBoard(messages) {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].kind === "GAME_BOARD") return messages[i];
  }
  return null;
}

/** Consecutive messages from the same sender, of the same kind and privacy, as one group. */
export function groupMessages(messages) {
  const groups = [];
  for (const m of messages) {
    const last = groups.at(-1);
    const privateMessage = Boolean(m.private);
    if (last && last.sender === m.sender && last.kind === m.kind && last.private === privateMessage) {
      last.texts.push(m.text);
    } else {
      groups.push({ sender: m.sender, kind: m.kind, private: privateMessage, texts: [m.text] });
    }
  }
  return groups;
}

function senderLabel(sender, players, seat) {
  if (sender < 0) return "Game";
  const name = players?.[sender] ?? "?";
  return sender === seat ? `You, ${name} (Player ${sender})` : `${name} (Player ${sender})`;
}

/**
 * An <ol> of the message groups. `seat`: the viewer's seat (its messages say "You"), -1 for a spectator.
 */
export function renderTranscript(messages, { players = [], seat = -1, label = "Game transcript" } = {}) {
  const list = h("ol", { class: "transcript", "aria-label": label });
  for (const group of groupMessages(messages)) {
    const kind = KINDS[group.kind] ?? (group.kind || "message").toLowerCase().replaceAll("_", " ");
    const classes = ["msg", group.sender < 0 ? "from-game" : group.sender === seat ? "from-me" : "from-player",
      `kind-${(group.kind || "message").toLowerCase()}`];
    if (group.private) classes.push("private");
    const header = h("p", { class: "msg-head" },
      h("span", { class: "who" }, senderLabel(group.sender, players, seat)), " · ", h("span", { class: "kind" }, kind),
      group.private ? h("span", { class: "badge private-badge" }, "only you see this") : null);
    const bodies = group.texts.map((text) => MONOSPACE.has(group.kind)
      ? h("pre", { class: group.kind === "GAME_BOARD" ? "board-text" : "prompt-text" }, text)
      : h("p", { class: "msg-text" }, text));
    list.append(h("li", { class: classes.join(" ") }, header, ...bodies));
  }
  return list;
}

/** The exact text a seat was shown, behind a toggle. */
export function rawObservation(text, { id, summary = "Exact observation text (what a model receives)", open = false } = {}) {
  return h("details", { class: "raw", open },
    h("summary", {}, summary),
    h("pre", { id, class: "raw-text", tabindex: 0 }, text ?? ""));
}

/** Keep a scroll box at its bottom across a re-render when it was there before. */
export function stickToBottom(box, update) {
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  update();
  if (atBottom) box.scrollTop = box.scrollHeight;
}
