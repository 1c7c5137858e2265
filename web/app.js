// The browser client: play as a guest over the native protocol (/ws), watch live games, read stored ones.
const $ = (id) => document.getElementById(id);
const WS_URL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const TOKENS = "arena.tokens"; // guest name -> token, so a returning guest is rated as the same player
const GAME = "arena.game"; // the game in progress, resumed after a reload or a dropped connection

let player = null; // the socket we play on
let game = null; // {id, env, seat, players} while a game is shown
let countdown = null;
let viewer = null; // the socket we watch a game on

function tokens() {
  return JSON.parse(localStorage.getItem(TOKENS) || "{}");
}

function rememberToken(name, token) {
  localStorage.setItem(TOKENS, JSON.stringify({ ...tokens(), [name]: token }));
}

function say(text) {
  $("status").textContent = text;
}

function fail(text) {
  $("error").textContent = text;
}

function line(players, message) {
  const who = message.sender < 0 ? "GAME" : `${players[message.sender] ?? "?"} (Player ${message.sender})`;
  return `[${who}] ${message.text}\n`;
}

// --- playing --------------------------------------------------------------------------------

function join(event) {
  event.preventDefault();
  const name = $("name").value.trim();
  if (!name) return;
  fail("");
  $("join-button").disabled = true;
  player = new WebSocket(WS_URL);
  player.onopen = () => {
    const token = tokens()[name];
    player.send(JSON.stringify(token ? { type: "hello", token } : { type: "hello", guest: name }));
  };
  player.onmessage = (e) => onPlayerMessage(name, JSON.parse(e.data));
  player.onclose = () => disconnected();
}

function disconnected() {
  if ($("identity").hidden && !$("error").textContent) fail("Could not reach the arena server; try again.");
  player = null;
  stopCountdown();
  setMoveEnabled(false);
  $("join").hidden = false;
  $("join-button").disabled = false;
  $("find").hidden = true;
  $("identity").hidden = true;
  if (game) say("Disconnected. Join again soon to take your seat back (the server keeps it 30 s by default).");
}

const playerHandlers = {
  welcome(name, m) {
    if (m.token) rememberToken(name, m.token);
    $("join").hidden = true;
    $("identity").hidden = false;
    $("identity").textContent = `Playing as ${m.name}`;
    $("find").hidden = false;
    setFinding(false);
    const pending = localStorage.getItem(GAME);
    if (pending) player.send(JSON.stringify({ type: "resume", game_id: Number(pending) }));
  },
  queued(_, m) {
    setFinding(true);
    say(`Waiting for a game: position ${m.position}, ${Math.round(m.waited)} s so far.`);
  },
  match(_, m) {
    game = { id: m.game_id, env: m.env_id, seat: m.seat, players: m.players };
    localStorage.setItem(GAME, String(m.game_id));
    setFinding(true);
    $("find-button").disabled = true;
    $("leave-button").hidden = true;
    $("game").hidden = false;
    $("result").hidden = true;
    $("game-title").textContent =
      `Game ${m.game_id}: ${m.env_id}, you are Player ${m.seat} (${m.players.join(" vs ")})`;
    $("observation").textContent = "";
    say(m.resumed ? "Back in your game." : "The game starts.");
  },
  turn(_, m) {
    if (!game || m.game_id !== game.id) return;
    game.turn = m.turn;
    $("observation").textContent = m.observation;
    $("observation").scrollTop = $("observation").scrollHeight;
    setMoveEnabled(true);
    startCountdown(m.deadline);
    say(`Your move (turn ${m.turn}).`);
  },
  ack() {
    setMoveEnabled(false);
    stopCountdown();
    say("Move sent; waiting for the other players.");
  },
  event(_, m) {
    if (!game || m.game_id !== game.id) return;
    const log = $("observation"); // the next turn's observation replaces it: TextArena repeats what you saw
    const gap = log.textContent && !log.textContent.endsWith("\n") ? "\n" : "";
    log.textContent += gap + m.messages.map((msg) => line(game.players, msg)).join("");
    log.scrollTop = log.scrollHeight;
  },
  game_over(_, m) {
    localStorage.removeItem(GAME);
    setMoveEnabled(false);
    stopCountdown();
    $("result").hidden = false;
    $("result").textContent = resultText(m);
    say("Game over.");
    game = null;
    setFinding(false);
    refresh();
  },
  error(name, m) {
    fail(`${m.message} (${m.code})`);
    if (m.code === "name_taken" || m.code === "bad_token") {
      if (m.code === "bad_token") forgetToken(name);
      player.close();
    }
    if (m.code === "unknown_game" || m.code === "not_your_game") localStorage.removeItem(GAME);
  },
  shutdown(_, m) {
    fail(m.message);
  },
  pong() {},
};

function onPlayerMessage(name, message) {
  const handler = playerHandlers[message.type];
  if (handler) handler(name, message);
}

function forgetToken(name) {
  const all = tokens();
  delete all[name];
  localStorage.setItem(TOKENS, JSON.stringify(all));
}

function resultText(m) {
  if (m.status !== "finished") return `The game was aborted: ${m.reason}. It is not rated.`;
  const others = Object.entries(m.rewards).filter(([seat]) => Number(seat) !== m.seat).map(([, r]) => r);
  const best = Math.max(...others);
  const verdict = m.reward > best ? "You won" : m.reward === best ? "A draw" : "You lost";
  let text = `${verdict} (reward ${m.reward}). ${m.reason}`;
  if (m.rating_after !== null && m.rating_after !== undefined) {
    const sign = m.rating_change >= 0 ? "+" : "";
    text += ` Rating ${m.rating_before.toFixed(2)} → ${m.rating_after.toFixed(2)} (${sign}${m.rating_change.toFixed(2)}).`;
  }
  return text;
}

function find(event) {
  event.preventDefault();
  fail("");
  const request = { type: "queue", envs: [$("env").value] };
  if ($("opponent").value) request.opponent = $("opponent").value;
  player.send(JSON.stringify(request));
  setFinding(true);
}

function leave() {
  player.send(JSON.stringify({ type: "leave" }));
  setFinding(false);
  say("You left the queue.");
}

function setFinding(finding) {
  $("find-button").disabled = finding;
  $("leave-button").hidden = !finding || game !== null;
}

function sendMove(event) {
  event.preventDefault();
  const action = $("action").value.trim();
  if (!game || !action) return;
  player.send(JSON.stringify({ type: "action", game_id: game.id, action }));
  $("action").value = "";
  setMoveEnabled(false);
}

function setMoveEnabled(enabled) {
  $("action").disabled = !enabled;
  $("send").disabled = !enabled;
  if (enabled) $("action").focus();
}

function startCountdown(deadline) {
  stopCountdown();
  const tick = () => {
    const left = Math.max(0, Math.round(deadline - Date.now() / 1000));
    $("deadline").textContent = `${left} s left`;
  };
  tick();
  countdown = setInterval(tick, 1000);
}

function stopCountdown() {
  clearInterval(countdown);
  $("deadline").textContent = "";
}

// --- watching -------------------------------------------------------------------------------

function watch(gameId) {
  stopWatching();
  let players = [];
  $("watch").hidden = false;
  $("watch-title").textContent = `Watching game ${gameId}`;
  $("watch-log").textContent = "";
  viewer = new WebSocket(WS_URL);
  viewer.onopen = () => viewer.send(JSON.stringify({ type: "spectate", game_id: gameId }));
  viewer.onmessage = (e) => {
    const m = JSON.parse(e.data);
    const log = $("watch-log");
    if (m.type === "match") {
      players = m.players;
      $("watch-title").textContent = `Watching game ${gameId}: ${m.env_id} (${players.join(" vs ")})`;
    } else if (m.type === "event") {
      log.textContent += m.messages.map((msg) => line(players, msg)).join("");
    } else if (m.type === "game_over") {
      log.textContent += `Game over: ${m.reason}\n`;
      viewer.close();
    } else if (m.type === "error") {
      log.textContent += `${m.message}\n`;
    }
    log.scrollTop = log.scrollHeight;
  };
}

function stopWatching() {
  if (viewer) viewer.close();
  viewer = null;
  $("watch").hidden = true;
}

// --- tables ---------------------------------------------------------------------------------

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.appendChild(content);
  else td.textContent = content;
  row.appendChild(td);
}

function button(text, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.onclick = onclick;
  return b;
}

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement("tr");
    cells.forEach((c) => cell(tr, c));
    body.appendChild(tr);
  }
}

async function getJson(path) {
  return (await fetch(path)).json();
}

async function refresh() {
  const env = $("board-env").value;
  const [live, recent, board] = await Promise.all([
    getJson("/api/live"),
    getJson("/api/episodes?limit=10"),
    getJson(`/api/leaderboard${env ? `?env=${encodeURIComponent(env)}` : ""}`),
  ]);
  fillTable("live", live.map((g) => [g.game_id, g.env_id, g.players.join(" vs "), g.turns,
    button("watch", () => watch(g.game_id))]));
  fillTable("recent", recent.map((e) => [e.id, e.env_id, e.seats.map((s) => s.agent).join(" vs "),
    e.status === "finished" ? e.seats.map((s) => `${s.agent}: ${s.result}`).join(", ") : e.status,
    button("view", () => showEpisode(e.id))]));
  fillTable("board", board.map((s, i) => [i + 1, s.agent, s.rating.toFixed(2), s.games,
    `${s.wins}/${s.draws}/${s.losses}`]));
}

// --- the log of a stored game ---------------------------------------------------------------

async function showEpisode(id) {
  const e = await getJson(`/api/episodes/${id}`);
  const names = e.seats.map((s) => s.agent);
  $("episode").hidden = false;
  $("episode-title").textContent = `Game ${e.id}: ${e.env_id} (${names.join(" vs ")}), seed ${e.seed}`;
  $("episode-result").textContent = `${e.status}: ${e.reason ?? ""}`;
  $("episode-turns").replaceChildren(...e.turns.map((t) => turnItem(t, names)));
}

function turnItem(turn, names) {
  const item = document.createElement("li");
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  const note = turn.invalid ? ` (invalid: ${turn.invalid_reason})` : turn.error ? ` (${turn.error})` : "";
  summary.textContent = `${names[turn.seat]} (Player ${turn.seat}) played ${turn.action || "nothing"}${note}`;
  const observation = document.createElement("pre");
  observation.textContent = turn.observation;
  details.append(summary, observation);
  item.appendChild(details);
  return item;
}

async function loadChoices() {
  const house = await getJson("/api/house");
  for (const h of house) $("opponent").add(new Option(`${h.name} (house agent)`, h.name));
  $("env").add(new Option("loading the game list…", ""));
  const games = await getJson("/api/games"); // slow only while a new server checks its catalog
  $("env").replaceChildren(...games.map((g) => new Option(g.env_id, g.env_id, false, g.env_id === "TicTacToe-v0")));
  for (const g of games) $("board-env").add(new Option(g.env_id, g.env_id));
}

$("join").addEventListener("submit", join);
$("find").addEventListener("submit", find);
$("leave-button").addEventListener("click", leave);
$("move").addEventListener("submit", sendMove);
$("watch-close").addEventListener("click", stopWatching);
$("episode-close").addEventListener("click", () => { $("episode").hidden = true; });
$("board-env").addEventListener("change", refresh);
$("name").value = Object.keys(tokens()).at(-1) ?? "";
loadChoices();
refresh();
setInterval(refresh, 3000);
