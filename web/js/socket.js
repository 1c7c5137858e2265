// The native protocol (/ws): the signed-in person's connection (one per tab, kept across pages), and
// spectator connections.

import { turnMoves } from "./dom.js";

export const WS_URL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const TOKENS = "arena.tokens"; // guest name -> token, so a returning guest is rated as the same player
const GAME = "arena.game"; // the game in progress, resumed after a reload or a dropped connection
const ME = "arena.me"; // the name this browser last signed in with (signed in again on load)
const RETRIES = [500, 1000, 2000, 4000, 8000, 8000]; // ms between reconnects after a dropped connection
const UNREACHABLE = "Could not reach the arena server; try again.";

function readJson(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key)) ?? fallback;
  } catch {
    return fallback;
  }
}

export const tokens = {
  all: () => readJson(TOKENS, {}),
  get: (name) => tokens.all()[name],
  set: (name, token) => localStorage.setItem(TOKENS, JSON.stringify({ ...tokens.all(), [name]: token })),
  forget(name) {
    const all = tokens.all();
    delete all[name];
    localStorage.setItem(TOKENS, JSON.stringify(all));
  },
};

/** The name to offer in the join form: the last one used here. */
export function lastName() {
  return localStorage.getItem(ME) ?? Object.keys(tokens.all()).at(-1) ?? "";
}

/** Who won, in words, from a game_over seen by `seat` (-1: a spectator). */
export function verdict(over, players = [], seat = -1) {
  if (over.status !== "finished") return { outcome: "aborted", text: "Game aborted" };
  const rewards = Object.entries(over.rewards ?? {}).map(([s, r]) => [Number(s), r]);
  if (!rewards.length) return { outcome: "unknown", text: "Game over" };
  const best = Math.max(...rewards.map(([, r]) => r));
  const winners = rewards.filter(([, r]) => r === best).map(([s]) => s);
  if (rewards.length === 1) {
    const reward = rewards[0][1];
    const outcome = reward > 0 ? "win" : reward < 0 ? "loss" : "draw";
    const mine = seat >= 0;
    const text = { win: mine ? "You won" : "Solved", loss: mine ? "You lost" : "Not solved", draw: "Game over" }[outcome];
    return { outcome, text };
  }
  if (winners.length === rewards.length) return { outcome: "draw", text: "Draw" };
  if (seat >= 0) {
    if (winners.includes(seat)) return { outcome: "win", text: winners.length > 1 ? "You won (shared)" : "You won" };
    return { outcome: "loss", text: "You lost" };
  }
  const names = winners.map((s) => `${players[s] ?? "?"} (Player ${s})`);
  return { outcome: "win", text: `${names.join(" and ")} won` };
}

/** A game this tab plays: what the server told us, kept for the game page. */
function newGame(match) {
  return {
    id: match.game_id,
    env: match.env_id,
    seat: match.seat,
    players: match.players,
    resumed: match.resumed,
    turn: null, // the latest `turn`
    moves: [],
    events: [], // public messages since the latest turn (the turn's `messages` holds the ones before)
    myTurn: false,
    sent: null, // the action in flight
    lastSent: null,
    feedback: null, // {text, invalid}
    over: null, // the `game_over`
  };
}

/** The signed-in person: one connection, the queue, the game in progress, games finished in this tab. */
class Session extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.name = "";
    this.identity = null; // "guest:ada" once welcomed
    this.state = "offline"; // offline | connecting | online | reconnecting
    this.queue = null; // {envs, opponent, position, waited, at}
    this.game = null;
    this.finished = new Map(); // game id -> game, for the result page
    this.ended = new Set(); // game ids the server says are over (a resume that came too late)
    this.status = "";
    this.error = "";
    this.retries = 0;
    this.stopped = false;
    this.ticker = null;
  }

  emit(what, detail = {}) {
    this.dispatchEvent(new CustomEvent(what, { detail }));
    if (what !== "change") this.dispatchEvent(new CustomEvent("change", { detail: { what, ...detail } }));
  }

  say(text) {
    this.status = text;
    this.emit("change", { what: "status" });
  }

  fail(text) {
    this.error = text;
    this.emit("change", { what: "error" });
  }

  get online() {
    return this.state === "online";
  }

  /** Sign in as guest `name` (with its remembered token, if any). */
  join(name) {
    name = name.trim();
    if (!name) return;
    this.drop();
    this.name = name;
    this.error = "";
    this.stopped = false;
    this.retries = 0;
    this.state = "connecting";
    this.say("Connecting…");
    this.connect();
  }

  /** Sign in again on load when this browser has a remembered guest. */
  resumeIdentity() {
    const name = localStorage.getItem(ME);
    if (name && tokens.get(name)) this.join(name);
  }

  signOut() {
    localStorage.removeItem(ME);
    this.state = "offline";
    this.drop();
    this.identity = null;
    this.queue = null;
    this.stopTicker();
    this.say("Signed out.");
  }

  drop() {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
  }

  connect() {
    let ws;
    try {
      ws = new WebSocket(WS_URL);
    } catch {
      this.closed(false);
      return;
    }
    this.ws = ws;
    let welcomed = false;
    ws.onopen = () => {
      const token = tokens.get(this.name);
      this.send(token ? { type: "hello", token } : { type: "hello", guest: this.name });
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "welcome") welcomed = true;
      this.handle(message);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.closed(welcomed);
    };
  }

  closed(welcomed) {
    if (this.state === "offline") return;
    if (this.game) {
      this.game.myTurn = false;
      this.game.sent = null;
    }
    if (!welcomed && this.state === "connecting") {
      this.state = "offline";
      this.fail(UNREACHABLE);
      this.say("");
      return;
    }
    if (this.stopped) {
      this.state = "offline";
      this.queue = null;
      this.stopTicker();
      this.say("The server stopped. Join again when it is back.");
      return;
    }
    if (this.retries < RETRIES.length) {
      const delay = RETRIES[this.retries++];
      this.state = "reconnecting";
      this.say(`Lost the connection; reconnecting (try ${this.retries} of ${RETRIES.length})…`);
      setTimeout(() => {
        if (this.state === "reconnecting") this.connect();
      }, delay);
      return;
    }
    this.state = "offline";
    this.queue = null;
    this.stopTicker();
    this.fail(this.game
      ? "Lost the connection to the arena server. Join again soon to take your seat back (it is kept for a short while)."
      : UNREACHABLE);
    this.say("");
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  // --- what a person does ---------------------------------------------------------------------

  /** Queue for any of `envs`, against `opponent` (a name) or anyone. */
  queueFor(envs, opponent = "") {
    if (!this.online) {
      this.fail("Join with a name first.");
      return;
    }
    this.error = "";
    const message = { type: "queue", envs };
    if (opponent) message.opponent = opponent;
    this.send(message);
    this.queue = { envs, opponent, position: null, waited: 0, at: performance.now() / 1000 };
    this.startTicker();
    this.tick();
  }

  leave() {
    this.send({ type: "leave" });
    this.queue = null;
    this.stopTicker();
    this.say("You left the queue.");
  }

  /** Send `action` in the game in progress, if it is this seat's turn. */
  move(action) {
    const game = this.game;
    action = action.trim();
    if (!game || !game.myTurn || !action) return false;
    if (!this.send({ type: "action", game_id: game.id, action })) return false;
    game.sent = action;
    game.lastSent = action;
    game.myTurn = false;
    game.feedback = null;
    this.say(`Sending ${action}…`);
    this.emit("game");
    return true;
  }

  // --- the queue's clock: the server says how long every 2 s, we tick every second between ----

  startTicker() {
    this.stopTicker();
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  stopTicker() {
    clearInterval(this.ticker);
    this.ticker = null;
  }

  tick() {
    const q = this.queue;
    if (!q) return;
    const waited = q.waited + (performance.now() / 1000 - q.at);
    const against = q.opponent ? ` against ${q.opponent}` : "";
    const position = q.position ? `position ${q.position}, ` : "";
    this.say(`Waiting for a game of ${q.envs.join(", ")}${against}: ${position}${Math.floor(waited)} s waited.`);
  }

  // --- what the server says -------------------------------------------------------------------

  handle(m) {
    const handler = this[`on_${m.type}`];
    if (handler) handler.call(this, m);
  }

  on_welcome(m) {
    this.identity = m.name;
    if (m.token) tokens.set(this.name, m.token);
    localStorage.setItem(ME, this.name);
    const reconnected = this.state === "reconnecting";
    this.state = "online";
    this.retries = 0;
    this.error = "";
    this.say(`Signed in as ${m.name}.`);
    const pending = Number(localStorage.getItem(GAME));
    if (pending) {
      this.send({ type: "resume", game_id: pending });
    } else if (reconnected && this.queue) {
      this.queueFor(this.queue.envs, this.queue.opponent); // a dropped connection left the queue
    }
    this.emit("welcome");
  }

  on_queued(m) {
    if (!this.queue) this.queue = { envs: m.envs, opponent: "" };
    Object.assign(this.queue, { envs: m.envs, position: m.position, waited: m.waited, at: performance.now() / 1000 });
    if (!this.ticker) this.startTicker();
    this.tick();
    this.emit("queue");
  }

  on_match(m) {
    if (m.seat < 0) return;
    this.queue = null;
    this.stopTicker();
    this.game = newGame(m);
    this.ended.delete(m.game_id);
    localStorage.setItem(GAME, String(m.game_id));
    this.say(m.resumed ? "Back in your game." : `The game starts: you are Player ${m.seat}.`);
    this.emit("match", { game: this.game });
  }

  on_turn(m) {
    const game = this.game;
    if (!game || game.id !== m.game_id) return;
    game.turn = m;
    game.events = [];
    game.moves = turnMoves(m);
    game.myTurn = true;
    game.sent = null;
    this.say(`Your move (turn ${m.turn}).`);
    this.emit("game");
  }

  on_ack(m) {
    const game = this.game;
    if (!game || game.id !== m.game_id) return;
    game.myTurn = false;
    const action = game.sent ?? game.lastSent ?? "your move";
    game.sent = null;
    if (m.invalid) {
      const reason = (m.reason || "the game did not accept it").replace(/[.\s]+$/, "");
      game.feedback = { invalid: true, text: `Invalid move ${action}: ${reason}.` };
      this.say(`The game rejected ${action}.`);
    } else {
      this.say("Move sent; waiting for the other players.");
    }
    this.emit("game");
  }

  on_event(m) {
    const game = this.game;
    if (!game || game.id !== m.game_id) return;
    game.events.push(...m.messages);
    this.emit("game");
  }

  on_game_over(m) {
    const game = this.game;
    if (!game || game.id !== m.game_id) return;
    game.over = m;
    game.myTurn = false;
    game.sent = null;
    this.finished.set(game.id, game);
    this.game = null;
    localStorage.removeItem(GAME);
    this.say(`Game over: ${verdict(m, game.players, game.seat).text}.`);
    this.emit("game_over", { game });
  }

  on_error(m) {
    const game = this.game;
    switch (m.code) {
      case "name_taken":
      case "missing_token":
        this.state = "offline";
        this.drop();
        this.fail(m.code === "name_taken"
          ? `The name “${this.name}” is taken: a guest name belongs to the browser that first used it. Pick another.`
          : m.message);
        this.say("");
        return;
      case "bad_token":
        tokens.forget(this.name); // the server does not know this guest (a new database): join afresh
        this.drop();
        this.state = "connecting";
        this.connect();
        return;
      case "unknown_game":
      case "not_your_game": {
        const pending = Number(localStorage.getItem(GAME));
        if (pending) {
          localStorage.removeItem(GAME);
          this.ended.add(pending);
          if (game?.id === pending) this.game = null;
          this.say("Your last game has already ended.");
          this.emit("game");
          return;
        }
        break;
      }
      case "not_your_turn":
      case "stale_turn":
      case "game_over":
        if (game) {
          game.feedback = { invalid: false, text: m.message };
          this.emit("game");
          return;
        }
        break;
      case "unknown_env":
      case "unplayable_env":
      case "shutting_down":
        this.queue = null;
        this.stopTicker();
        this.say("");
        break;
      default:
    }
    this.fail(m.code ? `${m.message} (${m.code})` : m.message);
  }

  on_shutdown(m) {
    this.stopped = true;
    const text = m.message || "the server is shutting down";
    this.fail(`${text[0].toUpperCase()}${text.slice(1)}.`);
  }
}

export const session = new Session();

/**
 * Watch a live game's public view: `onMessage` gets every frame (match, event, game_over, error), and
 * `onClose` when the connection ends. Returns a function that stops watching.
 */
export function spectate(gameId, onMessage, onClose) {
  const ws = new WebSocket(WS_URL);
  let stopped = false;
  ws.onopen = () => ws.send(JSON.stringify({ type: "spectate", game_id: gameId }));
  ws.onmessage = (event) => {
    try {
      onMessage(JSON.parse(event.data));
    } catch (error) {
      console.error(error);
    }
  };
  ws.onclose = () => {
    if (!stopped) onClose?.();
  };
  return () => {
    stopped = true;
    ws.close();
  };
}
