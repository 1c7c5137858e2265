// The HTTP JSON API (the same routes every other client reads), and the catalog grouped into families.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET a JSON route; throws ApiError on an HTTP error and on a server that cannot be reached. */
export async function getJson(path) {
  let response;
  try {
    response = await fetch(path, { headers: { accept: "application/json" } });
  } catch {
    throw new ApiError(0, "Could not reach the arena server; try again.");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail ?? detail;
    } catch { /* not JSON */ }
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.json();
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

let gamesPromise = null;

export const api = {
  /** The playable catalog (cached; slow only while a new server checks its catalog). */
  games() {
    gamesPromise ??= getJson("/api/games").catch((error) => {
      gamesPromise = null;
      throw error;
    });
    return gamesPromise;
  },
  house: () => getJson("/api/house"),
  online: () => getJson("/api/online"),
  live: () => getJson("/api/live"),
  episodes: (params = {}) => getJson(`/api/episodes${query(params)}`),
  episode: (id) => getJson(`/api/episodes/${encodeURIComponent(id)}`),
  leaderboard: (env, tournament) => getJson(`/api/leaderboard${query({ env, tournament })}`),
  history: (name, env) => getJson(`/api/agents/${encodeURIComponent(name)}/history${query({ env })}`),
  tournaments: () => getJson("/api/tournaments"),
};

const WRAPPERS = { raw: "no wrappers: the game's own text", train: "training wrappers: messages and the current board" };

/** A variant's label in a menu: "standard", "blind", "raw (no wrappers: ...)". */
export function variantLabel(variant) {
  if (!variant) return "standard";
  const last = variant.split("-").at(-1);
  const note = WRAPPERS[variant] ?? (WRAPPERS[last] ? `${variant.slice(0, -last.length - 1)}, ${WRAPPERS[last]}` : "");
  return note ? `${variant} (${note})` : variant;
}

/** Games grouped by family: [{family, entries, main, players, description, singlePlayer, search}], sorted by name. */
export function families(games) {
  const byFamily = new Map();
  for (const game of games) {
    if (!byFamily.has(game.family)) byFamily.set(game.family, []);
    byFamily.get(game.family).push(game);
  }
  const wrapperRank = (v) => (v === "" ? 0 : /(^|-)(raw|train)$/.test(v) ? 2 : 1);
  const result = [];
  for (const [family, entries] of byFamily) {
    entries.sort((a, b) => wrapperRank(a.variant) - wrapperRank(b.variant));
    const main = entries.find((e) => e.variant === "") ?? entries[0];
    result.push({
      family,
      entries,
      main,
      players: [...new Set(entries.flatMap((e) => e.players))].sort((a, b) => a - b),
      description: main.description || entries.find((e) => e.description)?.description || "",
      singlePlayer: entries.every((e) => e.single_player),
      search: normalise([family, main.description, ...entries.map((e) => e.env_id)].join(" ")),
    });
  }
  return result.sort((a, b) => a.family.localeCompare(b.family, undefined, { sensitivity: "base", numeric: true }));
}

/** Lower case, letters and digits only: "Connect Four" and "connect-four" both find ConnectFour. */
export function normalise(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "");
}
