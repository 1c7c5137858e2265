// Live games (#/live, refreshed every 2 s) with the recent finished ones, and watching one (#/watch/ID):
// its public view over /ws, drawn with the same transcript as the game page.

import { api } from "./api.js";
import { agentLink, h, when } from "./dom.js";
import { renderBoard } from "./board.js";
import { spectate, verdict } from "./socket.js";
import { latestBoard, renderTranscript, stickToBottom } from "./transcript.js";

const REFRESH_MS = 2000;

function table(id, caption, headers) {
  const body = h("tbody");
  const el = h("table", { id, class: "data" }, h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" },
      text || h("span", { class: "sr-only" }, "Link"))))), body);
  return { el, body, wrap: h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption }, el) };
}

function players(names) {
  return names.flatMap((name, i) => [i ? " vs " : "", h("a", { href: agentLink(name) }, name)]);
}

function resultOf(episode) {
  if (episode.status !== "finished") return episode.status === "running" ? "in progress" : `${episode.status}`;
  const winners = episode.seats.filter((s) => s.result === "win").map((s) => s.agent);
  if (winners.length) return `${winners.join(", ")} won`;
  if (episode.seats.length > 1 && episode.seats.every((s) => s.result === "draw")) return "draw";
  return episode.seats.map((s) => `${s.agent}: ${s.result ?? "—"}`).join(", ");
}

export const livePage = {
  mount(root) {
    const live = table("live", "Games in progress", ["#", "Game", "Players", "Turns", "Watching", ""]);
    const recent = table("recent", "Recent games", ["#", "Game", "Players", "Result", "Ended", ""]);
    const liveEmpty = h("p", { id: "live-empty", class: "muted", hidden: true }, "No games in progress right now.");
    const liveError = h("p", { class: "error-text" });
    const recentEmpty = h("p", { id: "recent-empty", class: "muted", hidden: true }, "No finished games yet.");
    root.append(
      h("h1", {}, "Live games"),
      h("p", { class: "muted" }, "Games in progress, refreshed every 2 seconds. Watch one to see its moves as they are played (the public view: nobody's private information)."),
      liveError, live.wrap, liveEmpty,
      h("h2", {}, "Recent games"),
      h("p", { class: "muted" }, "Finished games: step through any of them move by move."),
      recent.wrap, recentEmpty);

    let stopped = false;
    async function refresh() {
      try {
        const [games, finished] = await Promise.all([api.live(), api.episodes({ status: "finished", limit: 20 })]);
        const episodes = finished.filter((e) => e.status !== "running");
        if (stopped) return;
        liveError.textContent = "";
        live.body.replaceChildren(...games.map((g) => h("tr", { "data-game": g.game_id },
          h("td", {}, g.game_id), h("td", {}, g.env_id), h("td", {}, players(g.players)), h("td", {}, g.turns),
          h("td", {}, g.spectators),
          h("td", {}, h("a", { class: "button", href: `#/watch/${g.game_id}`, "aria-label": `Watch game ${g.game_id}` }, "Watch")))));
        liveEmpty.hidden = games.length > 0;
        live.wrap.hidden = games.length === 0;
        recent.body.replaceChildren(...episodes.map((e) => h("tr", { "data-episode": e.id },
          h("td", {}, e.id), h("td", {}, e.env_id), h("td", {}, players(e.seats.map((s) => s.agent))),
          h("td", {}, resultOf(e)), h("td", {}, when(e.ended_at)),
          h("td", {}, e.status === "running"
            ? h("a", { class: "button", href: `#/watch/${e.id}`, "aria-label": `Watch game ${e.id}` }, "Watch")
            : h("a", { class: "button", href: `#/replay/${e.id}/1`, "aria-label": `Replay game ${e.id}` }, "Replay")))));
        recentEmpty.hidden = episodes.length > 0;
        recent.wrap.hidden = episodes.length === 0;
      } catch (error) {
        if (!stopped) liveError.textContent = error.message;
      }
    }
    refresh();
    const timer = setInterval(refresh, REFRESH_MS);
    return {
      unmount() {
        stopped = true;
        clearInterval(timer);
      },
    };
  },
};

export const watchPage = {
  mount(root, params) {
    const id = Number(params[0]);
    const title = h("h1", { id: "watch-title" }, `Watching game ${id}`);
    const who = h("p", { id: "watch-players", class: "players" });
    const state = h("p", { id: "watch-state", class: "muted", "aria-live": "polite" }, "Connecting…");
    const result = h("section", { id: "watch-result", class: "result card", hidden: true, "aria-live": "polite" });
    const boardBox = h("div", { id: "board-box", class: "board-box" });
    const box = h("div", { id: "transcript", class: "transcript-box", tabindex: 0, "aria-label": "Transcript" });
    root.append(title, who, state, result,
      h("div", { class: "game-layout" },
        h("section", { class: "play card", "aria-label": "Board" }, boardBox),
        h("section", { class: "log card", "aria-labelledby": "watch-log-title" },
          h("h2", { id: "watch-log-title" }, "Public messages"), box)),
      h("p", {}, h("a", { href: "#/live" }, "Back to live games")));

    let names = [];
    const messages = [];
    let over = false;

    function draw() {
      const board = latestBoard(messages);
      boardBox.replaceChildren(board ? renderBoard(board.text, { label: "Board" })
        : h("p", { class: "muted" }, "No board shown yet."));
      stickToBottom(box, () => box.replaceChildren(messages.length
        ? renderTranscript(messages, { players: names, seat: -1, label: "Public messages" })
        : h("p", { class: "muted" }, "No moves yet.")));
    }

    const stop = spectate(id, (m) => {
      if (m.type === "match") {
        names = m.players;
        title.textContent = `Watching ${m.env_id} · game ${id}`;
        who.replaceChildren(...names.map((n, seat) => h("span", { class: "player" }, `Player ${seat}: `,
          h("a", { href: agentLink(n, m.env_id) }, n))));
        state.textContent = "Live: moves appear as they are played.";
        draw();
      } else if (m.type === "event" && m.game_id === id) {
        messages.push(...m.messages);
        draw();
      } else if (m.type === "game_over" && m.game_id === id) {
        over = true;
        state.textContent = "The game is over.";
        result.hidden = false;
        result.replaceChildren(h("h2", {}, verdict(m, names).text), h("p", {}, m.reason ?? ""),
          h("p", {}, h("a", { href: `#/replay/${id}/1` }, "Replay it move by move")));
        stop();
      } else if (m.type === "error") {
        over = true;
        state.replaceChildren(m.code === "unknown_game" ? `Game ${id} is not in progress. ` : `${m.message} `,
          h("a", { href: `#/replay/${id}/1` }, "See its replay"));
        stop();
      } else if (m.type === "shutdown") {
        state.textContent = m.message;
      }
    }, () => {
      if (!over) state.textContent = "The connection to the server closed.";
    });
    return { unmount: () => stop() };
  },
};
