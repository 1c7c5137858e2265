// The leaderboard (#/leaderboard?env=..&tournament=..) and an agent's page (#/agent/NAME?env=..) with its
// rating history drawn by chart.js.

import { api, families, variantLabel } from "./api.js";
import { legend, ratingChart } from "./chart.js";
import { agentLink, h, num, when } from "./dom.js";
import { navigate } from "./router.js";

const EXPLAIN = "Rating = μ − 3σ, the conservative TrueSkill rating: μ is the estimated skill, σ how unsure the "
  + "estimate still is. It ranks players by a skill they are almost certainly above, so a newcomer starts at 0 and "
  + "climbs as games shrink σ.";
const BT_EXPLAIN = "Bradley–Terry rating (1000 = the field's average): fitted from all the games' results at once; the interval is 95% "
  + "(bootstrap). Two agents whose intervals overlap are not clearly apart.";

/** "1087 [881, 1466]": a Bradley–Terry rating (Elo-like scale, 1000 = the field's average) and its 95% interval. */
export function btText(bt) {
  if (!bt) return "—";
  return `${num(bt.rating, 0)} [${num(bt.low, 0)}, ${num(bt.high, 0)}]`;
}

function hashFor(base, params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) search.set(k, v);
  const text = search.toString();
  return text ? `${base}?${text}` : base;
}

/** <select> options for every playable game, grouped by family (the first option: all games). */
async function envOptions(select, chosen, only = null, current = () => true) {
  let games = [];
  try {
    games = await api.games();
  } catch { /* keep the overall option only */ }
  if (!current()) return;
  const groups = families(games)
    .map((f) => ({ ...f, entries: only ? f.entries.filter((e) => only.has(e.env_id)) : f.entries }))
    .filter((f) => f.entries.length);
  select.replaceChildren(h("option", { value: "" }, "All games (overall)"),
    ...groups.map((f) => h("optgroup", { label: f.family },
      f.entries.map((e) => h("option", { value: e.env_id, selected: e.env_id === chosen },
        `${e.env_id}${e.variant ? ` (${variantLabel(e.variant)})` : ""}`)))));
  if (chosen && ![...select.options].some((o) => o.value === chosen)) {
    select.append(h("option", { value: chosen, selected: true }, chosen));
  }
  select.value = chosen ?? "";
}

export const leaderboardPage = {
  mount(root, _params, query) {
    const env = h("select", { id: "lb-env", name: "env" }, h("option", { value: "" }, "All games (overall)"));
    const tournament = h("select", { id: "lb-tournament", name: "tournament" }, h("option", { value: "" }, "All games"));
    const caption = h("caption", {});
    const head = h("tr");
    const body = h("tbody");
    const table = h("table", { id: "leaderboard", class: "data" }, caption, h("thead", {}, head), body);
    const empty = h("p", { id: "leaderboard-empty", class: "muted", hidden: true });
    const bt = h("p", { class: "hint", hidden: true }, BT_EXPLAIN);
    const form = h("form", { id: "lb-filters", class: "filters row" },
      h("div", { class: "field" }, h("label", { for: "lb-env" }, "Game"), env),
      h("div", { class: "field" }, h("label", { for: "lb-tournament" }, "Tournament"), tournament));
    root.append(h("h1", {}, "Leaderboard"), form, h("p", { class: "hint" }, EXPLAIN),
      h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Leaderboard" }, table), empty, bt);

    const go = () => navigate(hashFor("#/leaderboard", { env: env.value, tournament: tournament.value }));
    env.addEventListener("change", go);
    tournament.addEventListener("change", go);
    let version = 0;

    async function load(q) {
      const mine = ++version;
      const chosenEnv = q.get("env") ?? "";
      const chosenTournament = q.get("tournament") ?? "";
      if (chosenEnv && ![...env.options].some((o) => o.value === chosenEnv)) {
        env.append(h("option", { value: chosenEnv }, chosenEnv));
      }
      env.value = chosenEnv;
      const rowsPromise = api.leaderboard(chosenEnv, chosenTournament);
      rowsPromise.catch(() => {}); // handled below
      let tournaments = [];
      try {
        tournaments = await api.tournaments();
      } catch { /* no tournaments listed */ }
      if (mine !== version) return;
      tournament.replaceChildren(h("option", { value: "" }, "All games"),
        ...tournaments.map((t) => h("option", { value: t.name }, `${t.name} (${t.format}, ${t.games_played}/${t.games_scheduled} games)`)));
      if (chosenTournament && !tournaments.some((t) => t.name === chosenTournament)) {
        tournament.append(h("option", { value: chosenTournament }, chosenTournament));
      }
      tournament.value = chosenTournament;
      const inTournament = tournaments.find((t) => t.name === chosenTournament);
      // the game list can be slow on a new server (it checks its catalog once): do not wait for it
      envOptions(env, chosenEnv, inTournament ? new Set(inTournament.envs) : null, () => mine === version);
      caption.textContent = `${chosenEnv || "All games"}${chosenTournament ? `, tournament ${chosenTournament}` : ""}`;
      body.replaceChildren(h("tr", {}, h("td", { colspan: 8 }, "Loading…")));
      let rows;
      try {
        rows = await rowsPromise;
      } catch (error) {
        if (mine !== version) return;
        body.replaceChildren();
        empty.hidden = false;
        empty.textContent = `Could not load the leaderboard: ${error.message}`;
        return;
      }
      if (mine !== version) return;
      const withBt = rows.some((r) => r.bt);
      bt.hidden = !withBt;
      head.replaceChildren(...["#", "Agent", "Rating (μ − 3σ)", "μ", "σ", "Games", "W / D / L",
        ...(withBt ? ["Bradley–Terry rating [95% interval]"] : [])].map((t) => h("th", { scope: "col" }, t)));
      body.replaceChildren(...rows.map((r, i) => h("tr", { "data-agent": r.agent },
        h("td", {}, i + 1),
        h("th", { scope: "row" }, h("a", { href: agentLink(r.agent, chosenEnv) }, r.agent)),
        h("td", { class: "num rating" }, num(r.rating)), h("td", { class: "num" }, num(r.mu)),
        h("td", { class: "num" }, num(r.sigma)), h("td", { class: "num games-count" }, r.games),
        h("td", { class: "num" }, `${r.wins} / ${r.draws} / ${r.losses}`),
        withBt ? h("td", { class: "num bt" }, btText(r.bt)) : null)));
      empty.hidden = rows.length > 0;
      empty.textContent = rows.length ? "" : "No rated games here yet.";
    }

    load(query);
    return { update: (_p, q) => load(q) };
  },
};

export const agentPage = {
  mount(root, params, query) {
    const name = params[0];
    const env = h("select", { id: "agent-env", name: "env" }, h("option", { value: "" }, "All games (overall)"));
    const stats = h("dl", { id: "agent-stats", class: "stats" });
    const chartBox = h("figure", { id: "chart", class: "chart-box" });
    const numbers = h("tbody");
    const games = h("tbody");
    root.append(
      h("h1", {}, name),
      h("div", { class: "filters row" }, h("div", { class: "field" }, h("label", { for: "agent-env" }, "Game"), env)),
      stats,
      h("h2", {}, "Rating history"),
      chartBox,
      h("details", { class: "raw" }, h("summary", {}, "The numbers, game by game"),
        h("div", { class: "table-wrap" }, h("table", { id: "history", class: "data" },
          h("thead", {}, h("tr", {}, ["#", "Game", "When", "μ", "σ", "Rating"].map((t) => h("th", { scope: "col" }, t)))),
          numbers))),
      h("h2", {}, "Recent games"),
      h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Recent games" },
        h("table", { id: "agent-games", class: "data" },
          h("thead", {}, h("tr", {}, ["#", "Game", "Players", "Result", "Ended", ""].map((t) => h("th", { scope: "col" },
            t || h("span", { class: "sr-only" }, "Link"))))),
          games)),
      h("p", {}, h("a", { href: "#/leaderboard" }, "Back to the leaderboard")));
    env.addEventListener("change", () => navigate(hashFor(`#/agent/${encodeURIComponent(name)}`, { env: env.value })));
    let version = 0;

    async function load(q) {
      const mine = ++version;
      const chosen = q.get("env") ?? "";
      const [recent, board, history] = await Promise.all([
        api.episodes({ agent: name, limit: 200 }).catch(() => []),
        api.leaderboard(chosen).catch(() => []),
        api.history(name, chosen).catch((error) => ({ error })),
      ]);
      if (mine !== version) return;
      const played = new Set(recent.map((e) => e.env_id));
      envOptions(env, chosen, played.size ? played : null, () => mine === version); // not awaited: the catalog can be slow on a new server

      const rank = board.findIndex((r) => r.agent === name);
      const row = board[rank];
      const item = (term, value) => [h("div", {}, h("dt", {}, term), h("dd", {}, value))];
      stats.replaceChildren(...(row ? [
        ...item("Rank", `${rank + 1} of ${board.length}`), ...item("Rating (μ − 3σ)", num(row.rating)),
        ...item("μ", num(row.mu)), ...item("σ", num(row.sigma)), ...item("Games", row.games),
        ...item("W / D / L", `${row.wins} / ${row.draws} / ${row.losses}`),
        ...(row.bt ? item("Bradley–Terry (95%)", btText(row.bt)) : []),
      ] : item("Games", `no rated games${chosen ? ` of ${chosen}` : ""} yet`)));

      if (history.error || !Array.isArray(history)) {
        chartBox.replaceChildren(h("p", { class: "muted" }, `No rating history: ${history.error?.message ?? "not available"}`));
        numbers.replaceChildren();
      } else if (!history.length) {
        chartBox.replaceChildren(h("p", { class: "muted" }, "No rated games yet."));
        numbers.replaceChildren();
      } else {
        const points = history.map((p) => ({ ...p, label: `game ${p.episode_id} (${p.env_id})` }));
        chartBox.replaceChildren(ratingChart(points, { title: `${name}'s rating in ${chosen || "all games"}` }),
          h("figcaption", {}, legend()));
        numbers.replaceChildren(...history.map((p, i) => h("tr", {},
          h("td", {}, h("a", { href: `#/replay/${p.episode_id}/1` }, `${i + 1}: game ${p.episode_id}`)),
          h("td", {}, p.env_id), h("td", {}, when(p.at)), h("td", { class: "num" }, num(p.mu)),
          h("td", { class: "num" }, num(p.sigma)), h("td", { class: "num" }, num(p.rating)))));
      }
      const shown = recent.filter((e) => !chosen || e.env_id === chosen).slice(0, 20);
      games.replaceChildren(...(shown.length ? shown.map((e) => {
        const me = e.seats.find((s) => s.agent === name);
        return h("tr", {},
          h("td", {}, e.id), h("td", {}, e.env_id),
          h("td", {}, e.seats.flatMap((s, i) => [i ? " vs " : "", s.agent === name ? s.agent : h("a", { href: agentLink(s.agent, chosen) }, s.agent)])),
          h("td", {}, e.status === "finished" ? (me?.result ?? "—") : e.status), h("td", {}, when(e.ended_at)),
          h("td", {}, e.status === "running" ? h("a", { href: `#/watch/${e.id}` }, "Watch")
            : h("a", { href: `#/replay/${e.id}/1` }, "Replay")));
      }) : [h("tr", {}, h("td", { colspan: 6 }, "No games yet."))]));
    }

    load(query);
    return { update: (_p, q) => load(q) };
  },
};
