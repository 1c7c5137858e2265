// The browser client: join as a guest, play over the native protocol (/ws), watch live games, see the board.
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
  player = null;
  stopCountdown();
  setMoveEnabled(false);
  $("join").hidden = false;
  $("join-button").disabled = false;
  $("find").hidden = true;
  $("identity").hidden = true;
  if (game) say("Disconnected. Join again within 30 s to take your seat back.");
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

function watchButton(gameId) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "watch";
  button.onclick = () => watch(gameId);
  return button;
}

async function refresh() {
  const live = await (await fetch("/api/live")).json();
  const liveBody = document.querySelector("#live tbody");
  liveBody.replaceChildren();
  for (const g of live) {
    const tr = document.createElement("tr");
    [g.game_id, g.env_id, g.players.join(" vs "), g.turns, watchButton(g.game_id)].forEach((c) => cell(tr, c));
    liveBody.appendChild(tr);
  }
  const board = await (await fetch("/api/leaderboard")).json();
  const boardBody = document.querySelector("#board tbody");
  boardBody.replaceChildren();
  board.forEach((s, i) => {
    const tr = document.createElement("tr");
    [i + 1, s.agent, s.rating.toFixed(2), s.games, `${s.wins}/${s.draws}/${s.losses}`].forEach((c) => cell(tr, c));
    boardBody.appendChild(tr);
  });
}

async function loadChoices() {
  const house = await (await fetch("/api/house")).json();
  for (const h of house) $("opponent").add(new Option(`${h.name} (house agent)`, h.name));
  $("env").add(new Option("loading the game list…", ""));
  const games = await (await fetch("/api/games")).json(); // slow only while a new server checks its catalog
  $("env").replaceChildren(...games.map((g) => new Option(g.env_id, g.env_id, false, g.env_id === "TicTacToe-v0")));
}

$("join").addEventListener("submit", join);
$("find").addEventListener("submit", find);
$("leave-button").addEventListener("click", leave);
$("move").addEventListener("submit", sendMove);
$("watch-close").addEventListener("click", stopWatching);
$("name").value = Object.keys(tokens()).at(-1) ?? "";
loadChoices();
refresh();
setInterval(refresh, 3000);
