// The browser client's entry point: routes, the header (who you are, your game), status and errors.

import * as game from "./game.js";
import * as leaderboard from "./leaderboard.js";
import * as live from "./live.js";
import * as lobby from "./lobby.js";
import * as replay from "./replay.js";
import { location, navigate, route, start } from "./router.js";
import { session } from "./socket.js";

route(/^\/$/, lobby);
route(/^\/game\/(\d+)$/, game);
route(/^\/live$/, live.livePage);
route(/^\/watch\/(\d+)$/, live.watchPage);
route(/^\/leaderboard$/, leaderboard.leaderboardPage);
route(/^\/agent\/([^/]+)$/, leaderboard.agentPage);
route(/^\/replay\/(\d+)(?:\/(\d+))?$/, replay);

const $ = (id) => document.getElementById(id);

function showSession() {
  $("status").textContent = session.status;
  $("error").textContent = session.error;
  const me = $("me");
  if (session.identity && session.state !== "offline") {
    me.textContent = session.state === "online" ? session.identity : `${session.identity} (reconnecting…)`;
  } else {
    me.textContent = session.state === "connecting" ? "Connecting…" : "Not signed in";
  }
  const link = $("nav-game");
  link.hidden = !session.game;
  if (session.game) link.href = `#/game/${session.game.id}`;
}

function markNav() {
  const { path } = location();
  for (const a of document.querySelectorAll("nav a[data-nav]")) {
    const here = a.dataset.nav === path || (a.dataset.nav === "/leaderboard" && path.startsWith("/agent/"))
      || (a.dataset.nav === "/live" && (path.startsWith("/watch/") || path.startsWith("/replay/")));
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const link = $("nav-game");
  if (session.game && path === `/game/${session.game.id}`) link.setAttribute("aria-current", "page");
  else link.removeAttribute("aria-current");
}

session.addEventListener("change", showSession);
session.addEventListener("match", (e) => navigate(`#/game/${e.detail.game.id}`));
document.addEventListener("routechange", markNav);
$("skip").addEventListener("click", (e) => {
  e.preventDefault();
  const target = document.querySelector("#view h1") ?? $("view");
  target.setAttribute("tabindex", "-1");
  target.focus();
});

session.resumeIdentity(); // before the first page: a game page opened by a reload knows it is reconnecting
showSession();
start();
