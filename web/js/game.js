// The game page (#/game/ID): the board you click, the valid moves, a text box, the move timer, what the game
// told you so far, and at the end the result, the rating change explained, and a rematch.

import { renderBoard } from "./board.js";
import { h, num, signed } from "./dom.js";
import { session, verdict } from "./socket.js";
import { gameMessages, latestBoard, rawObservation, renderTranscript, stickToBottom } from "./transcript.js";

const RATING_NOTE = "The leaderboard ranks by the conservative rating μ − 3σ: a skill level you are almost "
  + "certainly above. μ is the estimate of your skill and σ how unsure it still is; σ shrinks with every game "
  + "you play, so the conservative rating rises as you play more, even at the same skill.";

/** The other player to ask for a rematch: the opponent of a two-player game, else the first other seat. */
export function rematchOpponent(game) {
  const others = game.players.filter((_, seat) => seat !== game.seat);
  return others.length ? others[0] : "";
}

/** The rating lines of a finished game (seat's view). */
export function ratingText(over, env) {
  if (over.status !== "finished") return [`The game was aborted (${over.reason ?? "no reason given"}); it is not rated.`];
  if (over.rating_after === null || over.rating_after === undefined) return ["This game changed no rating."];
  const lines = [];
  if (typeof over.mu_after === "number" && typeof over.sigma_after === "number") {
    lines.push(`Your rating in ${env}: skill μ (mu) ${num(over.mu_before)} → ${num(over.mu_after)}, `
      + `uncertainty σ (sigma) ${num(over.sigma_before)} → ${num(over.sigma_after)}.`);
  }
  lines.push(`Conservative rating μ − 3σ: ${num(over.rating_before)} → ${num(over.rating_after)} `
    + `(${signed(over.rating_change)}).`);
  return lines;
}

export function mount(root, params) {
  const id = Number(params[0]);
  const title = h("h1", { id: "game-title" }, `Game ${id}`);
  const players = h("p", { id: "players", class: "players" });
  const notice = h("div", { id: "game-notice", class: "card", hidden: true });

  const turnInfo = h("p", { id: "turn-info", class: "turn-info" });
  const timer = h("p", { id: "timer", class: "timer" });
  const boardBox = h("div", { id: "board-box", class: "board-box" });
  const feedback = h("div", { id: "feedback", class: "feedback", role: "alert" });
  const moves = h("div", { id: "moves", class: "moves", role: "group", "aria-label": "Valid moves" });
  const action = h("input", { id: "action", name: "action", autocomplete: "off", spellcheck: "false", disabled: true });
  const send = h("button", { id: "send", type: "submit", class: "primary", disabled: true }, "Send");
  const moveForm = h("form", { id: "move", class: "move-form" },
    h("label", { for: "action" }, "Type a move"), h("div", { class: "row" }, action, send));
  const play = h("section", { class: "play card", "aria-label": "Your move" },
    h("div", { class: "turn-bar" }, turnInfo, timer), boardBox, feedback, moves, moveForm);

  const verdictTitle = h("h2", { id: "verdict", tabindex: -1 });
  const reason = h("p", { id: "reason" });
  const rating = h("div", { id: "rating-change" });
  const rematch = h("button", { id: "rematch", type: "button", class: "primary" }, "Rematch");
  const cancel = h("button", { id: "cancel-rematch", type: "button", hidden: true }, "Stop waiting");
  const links = h("p", { class: "row links" });
  const result = h("section", { id: "result", class: "result card", hidden: true, "aria-labelledby": "verdict" },
    verdictTitle, reason, rating, h("div", { class: "row" }, rematch, cancel), links);

  const transcriptBox = h("div", { id: "transcript", class: "transcript-box", tabindex: 0, "aria-label": "Transcript" });
  const raw = rawObservation("", { id: "observation" });
  const log = h("section", { class: "log card", "aria-labelledby": "log-title" },
    h("h2", { id: "log-title" }, "What the game has shown you"), transcriptBox, raw);

  const layout = h("div", { class: "game-layout" }, h("div", { class: "game-main" }, result, play), log);
  root.append(title, players, notice, layout);

  let timerHandle = null;
  let signature = "";
  let typed = false; // the last move was typed: give the text box the focus back on the next turn

  const game = () => (session.game?.id === id ? session.game : session.finished.get(id));

  function showNotice(...content) {
    notice.hidden = false;
    notice.replaceChildren(...content);
    layout.hidden = true;
  }

  function render() {
    const g = game();
    if (!g) {
      const pending = Number(localStorage.getItem("arena.game")) === id;
      players.textContent = "";
      if (session.ended.has(id)) {
        showNotice(h("p", {}, `Game ${id} has already ended. `),
          h("p", {}, h("a", { href: `#/replay/${id}/1` }, "See its replay"), " · ", h("a", { href: "#/" }, "Back to lobby")));
      } else if (pending && session.state !== "offline") {
        showNotice(h("p", {}, "Taking your seat back…"));
      } else if (pending) {
        showNotice(h("p", {}, "You are not signed in in this tab. "),
          h("p", {}, h("a", { href: "#/" }, "Join in the lobby"), " to take your seat back."));
      } else {
        showNotice(h("p", {}, `You do not play in game ${id} from this tab.`),
          h("p", {}, h("a", { href: `#/watch/${id}` }, "Watch it live"), " · ",
            h("a", { href: `#/replay/${id}/1` }, "See its replay"), " · ", h("a", { href: "#/" }, "Back to lobby")));
      }
      return;
    }
    notice.hidden = true;
    layout.hidden = false;
    title.textContent = `${g.env} · game ${g.id}`;
    players.replaceChildren(...g.players.map((p, seat) => h("span", { class: seat === g.seat ? "player you" : "player" },
      `Player ${seat}: ${p}${seat === g.seat ? " (you)" : ""}`)));

    const sig = [g.turn?.turn, g.events.length, g.myTurn, Boolean(g.over), g.feedback?.text, g.sent].join("|");
    if (sig !== signature) {
      signature = sig;
      renderPlay(g);
    }
    renderResult(g);
  }

  function renderPlay(g) {
    const focused = document.activeElement;
    const focusedMove = focused?.dataset?.move;
    const hadFocus = play.contains(focused) || focused === document.body || !focused;
    const active = g.myTurn && !g.over;
    const messages = gameMessages(g.turn, g.events);
    const board = latestBoard(messages);
    const onMove = (move) => {
      typed = false;
      session.move(move);
    };

    play.hidden = Boolean(g.over) && !board;
    boardBox.replaceChildren(board
      ? renderBoard(board.text, { moves: active ? g.moves : [], onMove: active ? onMove : null, label: "Board" })
      : h("p", { class: "muted" }, g.turn ? "This game shows no board." : "Waiting for the game to start…"));
    turnInfo.textContent = g.over ? "The game is over."
      : active ? `Your move (turn ${g.turn.turn}).`
        : g.sent ? `Sending ${g.sent}…` : "Waiting for the other players…";
    feedback.replaceChildren(...(g.feedback ? [h("p", { class: g.feedback.invalid ? "invalid" : "warning" }, g.feedback.text)] : []));
    moves.replaceChildren();
    if (active && g.moves.length) {
      moves.append(h("p", { class: "moves-label" }, "Valid moves:"),
        ...g.moves.map((move) => h("button", { type: "button", class: "move", "data-move": move, onclick: () => onMove(move) }, move)));
    }
    if (active && !g.moves.length) {
      moves.append(h("p", { class: "moves-label" }, "This game does not list its moves: type yours below, as its rules describe."));
    }
    moves.hidden = !moves.childElementCount;
    moveForm.hidden = Boolean(g.over);
    action.disabled = !active;
    send.disabled = !active;
    action.placeholder = active && g.moves.length ? `e.g. ${g.moves[0]}` : "";

    stickToBottom(transcriptBox, () =>
      transcriptBox.replaceChildren(messages.length
        ? renderTranscript(messages, { players: g.players, seat: g.seat })
        : h("p", { class: "muted" }, "Nothing yet.")));
    raw.querySelector("pre").textContent = g.turn?.observation ?? "(no observation yet)";

    if (active) startTimer(g.turn.deadline);
    else stopTimer();
    if (active && hadFocus && focused !== action) {
      const again = focusedMove && play.querySelector(`[data-move="${CSS.escape(focusedMove)}"]`);
      const target = typed ? action
        : again ?? boardBox.querySelector("button[data-move]") ?? moves.querySelector("button") ?? action;
      target.focus({ preventScroll: true });
    }
  }

  function renderResult(g) {
    result.hidden = !g.over;
    if (!g.over) return;
    const over = g.over;
    const v = verdict(over, g.players, g.seat);
    const firstTime = verdictTitle.textContent === "";
    verdictTitle.textContent = v.text;
    result.dataset.outcome = v.outcome;
    reason.textContent = over.reason ? `${over.reason}${typeof over.reward === "number" ? ` (your reward: ${over.reward})` : ""}` : "";
    rating.replaceChildren(...ratingText(over, g.env).map((line) => h("p", {}, line)),
      over.status === "finished" && over.rating_after !== null && over.rating_after !== undefined
        ? h("p", { class: "hint" }, RATING_NOTE) : null);
    const opponent = rematchOpponent(g);
    const waiting = Boolean(session.queue);
    rematch.textContent = waiting ? "Waiting for the rematch…" : opponent ? `Rematch ${opponent}` : "Play again";
    rematch.disabled = waiting || !session.online || Boolean(session.game);
    cancel.hidden = !waiting;
    if (!links.childElementCount) links.replaceChildren(
      h("a", { id: "back", href: "#/" }, "Back to lobby"),
      h("a", { href: `#/replay/${g.id}/1` }, "Replay this game"),
      h("a", { href: `#/leaderboard?env=${encodeURIComponent(g.env)}` }, `Leaderboard: ${g.env}`));
    if (firstTime) verdictTitle.focus({ preventScroll: false });
  }

  function startTimer(deadline) {
    stopTimer();
    const tick = () => {
      const left = Math.max(0, Math.ceil(deadline - Date.now() / 1000));
      const minutes = Math.floor(left / 60);
      timer.textContent = `${minutes}:${String(left % 60).padStart(2, "0")} left`;
      timer.classList.toggle("low", left <= 10);
    };
    tick();
    timerHandle = setInterval(tick, 250);
  }

  function stopTimer() {
    clearInterval(timerHandle);
    timerHandle = null;
    timer.textContent = "";
    timer.classList.remove("low");
  }

  moveForm.addEventListener("submit", (e) => {
    e.preventDefault();
    typed = true;
    if (session.move(action.value)) action.value = "";
  });
  rematch.addEventListener("click", () => {
    const g = game();
    if (g) session.queueFor([g.env], rematchOpponent(g));
  });
  cancel.addEventListener("click", () => session.leave());

  session.addEventListener("change", render);
  render();
  return {
    unmount() {
      session.removeEventListener("change", render);
      stopTimer();
    },
  };
}
