// Replays (#/replay/ID/STEP?seat=N): a stored game step by step, forwards and backwards (buttons, ←/→,
// Home/End), each step its own link; any seat's view: the observation it had last at that step.

import { api } from "./api.js";
import { renderBoard } from "./board.js";
import { agentLink, h } from "./dom.js";
import { navigate } from "./router.js";
import { latestBoard, parseObservation, rawObservation, renderTranscript } from "./transcript.js";

let cached = null; // {id, episode}: stepping does not fetch the game again

function resultLine(e) {
  if (e.status === "running") return "This game is still in progress.";
  if (e.status !== "finished") return `${e.status}: ${e.reason ?? ""}`;
  const bySeat = e.seats.map((s) => `${s.agent} (Player ${s.seat}): ${s.result ?? "—"}`).join(", ");
  return `${e.reason ? `${e.reason} ` : ""}${bySeat}.`;
}

export function mount(root, params, query) {
  const id = Number(params[0]);
  const title = h("h1", { id: "replay-title" }, `Replay of game ${id}`);
  const players = h("p", { id: "replay-players", class: "players" });
  const result = h("p", { id: "replay-result" });
  const status = h("p", { id: "replay-status", class: "muted" }, "Loading…");
  const button = (id_, text, label) => h("button", { id: id_, type: "button", "aria-label": label }, text);
  const first = button("first", "« First", "First move");
  const prev = button("prev", "← Previous", "Previous move");
  const next = button("next", "Next →", "Next move");
  const last = button("last", "Last »", "Last move");
  const stepLabel = h("span", { id: "step-label", class: "step-label", "aria-live": "polite" });
  const seat = h("select", { id: "replay-seat", name: "seat" });
  const permalink = h("a", { id: "step-link", href: "#" }, "Link to this step");
  const action = h("div", { id: "step-action", class: "step-action" });
  const boardBox = h("div", { id: "board-box", class: "board-box" });
  const transcriptBox = h("div", { id: "transcript", class: "transcript-box", tabindex: 0, "aria-label": "Observation" });
  const raw = rawObservation("", { id: "replay-observation" });
  const viewTitle = h("h2", { id: "view-title" }, "What the seat saw");
  const moves = h("ol", { id: "move-list", class: "move-list" });
  const body = h("div", { hidden: true },
    h("div", { class: "controls card" },
      h("div", { class: "row step-buttons", role: "group", "aria-label": "Step through the game" }, first, prev, stepLabel, next, last),
      h("div", { class: "row" }, h("div", { class: "field" }, h("label", { for: "replay-seat" }, "Whose view"), seat), permalink),
      h("p", { class: "hint" }, "Keys: ← and → step, Home and End jump to the first and last move.")),
    action,
    h("div", { class: "game-layout" },
      h("section", { class: "play card", "aria-label": "Board" }, boardBox),
      h("section", { class: "log card", "aria-labelledby": "view-title" }, viewTitle, transcriptBox, raw)),
    h("section", { class: "card", "aria-labelledby": "moves-title" }, h("h2", { id: "moves-title" }, "All moves"),
      h("div", { class: "move-list-box" }, moves)));
  root.append(title, players, result, status, body);

  let episode = null;
  let step = 1;
  let chosenSeat = null; // null: the seat that moved

  const count = () => episode?.turns.length ?? 0;
  const link = (s, seat_ = chosenSeat) => `#/replay/${id}/${s}${seat_ === null ? "" : `?seat=${seat_}`}`;
  const go = (s) => {
    if (!episode || !count()) return;
    const target = Math.min(Math.max(1, s), count());
    if (target !== step) navigate(link(target), { replace: true });
  };

  function draw() {
    const n = count();
    body.hidden = false;
    if (!n) {
      status.textContent = "This game has no moves.";
      body.hidden = true;
      return;
    }
    status.textContent = episode.status === "running"
      ? "This game is still in progress; observations are shown once it ends." : "";
    if (episode.status === "running") {
      status.append(" ", h("a", { href: `#/watch/${id}` }, "Watch it live"));
    }
    const turn = episode.turns[step - 1];
    const names = episode.seats.map((s) => s.agent);
    stepLabel.textContent = `Move ${step} of ${n}`;
    for (const [el, disabled] of [[first, step <= 1], [prev, step <= 1], [next, step >= n], [last, step >= n]]) {
      el.setAttribute("aria-disabled", String(disabled));
    }
    permalink.href = link(step);

    const viewer = chosenSeat ?? turn.seat;
    seat.value = chosenSeat === null ? "" : String(chosenSeat);
    const who = `${names[turn.seat] ?? "?"} (Player ${turn.seat})`;
    action.replaceChildren(
      h("p", { class: turn.invalid ? "invalid" : "" }, `Move ${step}: ${who} played `, h("code", {}, turn.action || "nothing"),
        turn.invalid ? h("span", { class: "badge invalid-badge" }, "invalid") : null,
        turn.invalid && turn.invalid_reason ? ` — ${turn.invalid_reason}` : "",
        turn.error ? ` (${turn.error})` : ""));

    let seen = null;
    let seenStep = 0;
    for (let j = step - 1; j >= 0; j--) {
      if (episode.turns[j].seat === viewer) {
        seen = episode.turns[j];
        seenStep = j + 1;
        break;
      }
    }
    viewTitle.textContent = seen && seen !== turn
      ? `What ${names[viewer]} (Player ${viewer}) saw at its last move, move ${seenStep}`
      : `What ${names[viewer] ?? "?"} (Player ${viewer}) saw before this move`;
    const text = seen?.observation ?? "";
    const messages = parseObservation(text);
    const board = latestBoard(messages);
    boardBox.replaceChildren(board ? renderBoard(board.text, { label: "Board" })
      : h("p", { class: "muted" }, seen ? "No board in this view." : `Player ${viewer} has not moved yet at this step.`));
    transcriptBox.replaceChildren(text
      ? renderTranscript(messages, { players: names, seat: viewer, label: "Observation" })
      : h("p", { class: "muted" }, seen ? "(observation withheld while the game runs)" : "Nothing yet."));
    transcriptBox.scrollTop = transcriptBox.scrollHeight;
    raw.querySelector("pre").textContent = text;

    for (const li of moves.children) {
      const current = Number(li.dataset.step) === step;
      const a = li.querySelector("a");
      a.href = link(Number(li.dataset.step));
      if (current) a.setAttribute("aria-current", "step");
      else a.removeAttribute("aria-current");
    }
    moves.querySelector('[aria-current="step"]')?.scrollIntoView({ block: "nearest" });
  }

  function setup() {
    const names = episode.seats.map((s) => s.agent);
    title.textContent = `Replay: ${episode.env_id} · game ${id}`;
    players.replaceChildren(...episode.seats.map((s) => h("span", { class: "player" }, `Player ${s.seat}: `,
      h("a", { href: agentLink(s.agent, episode.env_id) }, s.agent))));
    result.textContent = resultLine(episode);
    seat.replaceChildren(h("option", { value: "" }, "The player who moved"),
      ...episode.seats.map((s) => h("option", { value: String(s.seat) }, `${s.agent} (Player ${s.seat})`)));
    moves.replaceChildren(...episode.turns.map((t, i) => h("li", { "data-step": i + 1, class: t.invalid ? "invalid" : "" },
      h("a", { href: link(i + 1) }, `${names[t.seat] ?? "?"}: `, h("code", {}, t.action || "—"),
        t.invalid ? h("span", { class: "badge invalid-badge" }, "invalid") : null))));
  }

  function readParams(p, q) {
    step = Math.max(1, Number(p[1] ?? 1) || 1);
    const s = q.get("seat");
    chosenSeat = s === null || s === "" ? null : Number(s);
  }

  async function load() {
    try {
      episode = cached?.id === id && cached.episode.status !== "running" ? cached.episode : await api.episode(id);
    } catch (error) {
      status.replaceChildren(error.status === 404 ? `There is no game ${id}. ` : `Could not load game ${id}: ${error.message} `,
        h("a", { href: "#/live" }, "Recent games"));
      return;
    }
    cached = { id, episode };
    setup();
    if (step > count() && count()) {
      navigate(link(count()), { replace: true });
      return;
    }
    draw();
  }

  first.addEventListener("click", () => go(1));
  prev.addEventListener("click", () => go(step - 1));
  next.addEventListener("click", () => go(step + 1));
  last.addEventListener("click", () => go(count()));
  seat.addEventListener("change", () => {
    chosenSeat = seat.value === "" ? null : Number(seat.value);
    navigate(link(step), { replace: true });
  });
  const onKey = (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
    if (e.target.closest?.("input, select, textarea, [contenteditable]")) return;
    const to = { ArrowLeft: step - 1, ArrowRight: step + 1, Home: 1, End: count() }[e.key];
    if (to === undefined || !episode) return;
    e.preventDefault();
    go(to);
  };
  document.addEventListener("keydown", onKey);

  readParams(params, query);
  load();
  return {
    update(p, q) {
      readParams(p, q);
      if (episode) {
        if (step > count()) return navigate(link(count()), { replace: true });
        draw();
      }
    },
    unmount() {
      document.removeEventListener("keydown", onKey);
    },
  };
}
