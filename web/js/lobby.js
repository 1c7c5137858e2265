// The lobby (#/): sign in as a guest, find a game by family (variants under it), pick an opponent, queue.

import { api, families, normalise, variantLabel } from "./api.js";
import { h, playerCount } from "./dom.js";
import { lastName, session } from "./socket.js";

let chosenEnv = "TicTacToe-v0"; // kept across visits to the lobby

function field(label, control, hint) {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control,
    hint ? h("p", { class: "hint", id: `${control.id}-hint` }, hint) : null);
}

export function mount(root) {
  // --- who you are ---------------------------------------------------------------------------
  const name = h("input", {
    id: "name", name: "name", required: true, maxlength: 40, autocomplete: "nickname", value: lastName(),
    "aria-describedby": "name-hint", spellcheck: "false",
  });
  const joinButton = h("button", { id: "join-button", type: "submit", class: "primary" }, "Join");
  const joinForm = h("form", { id: "join", class: "inline-form" },
    h("div", { class: "field" }, h("label", { for: "name" }, "Your name"), h("div", { class: "row" }, name, joinButton),
      h("p", { class: "hint", id: "name-hint" },
        "You play as a guest (guest:NAME) with a rating of your own; this browser remembers you.")));
  const identity = h("p", { id: "identity" });
  const signOut = h("button", { id: "sign-out", type: "button" }, "Change name");
  const signedIn = h("div", { id: "signed-in", class: "row" }, identity, signOut);
  const resumeBanner = h("p", { id: "current-game", class: "banner", hidden: true });

  // --- the game you pick ---------------------------------------------------------------------
  const selectedTitle = h("h3", { id: "selected-title" }, "TicTacToe");
  const selectedMeta = h("p", { id: "selected-meta", class: "muted" });
  const variant = h("select", { id: "variant", name: "env" });
  const opponent = h("select", { id: "opponent", name: "opponent" }, h("option", { value: "" }, "Anyone"));
  const findButton = h("button", { id: "find-button", type: "submit", class: "primary" }, "Find a game");
  const leaveButton = h("button", { id: "leave-button", type: "button", hidden: true }, "Leave the queue");
  const findHint = h("p", { id: "find-hint", class: "hint" });
  const queueInfo = h("p", { id: "queue-info", class: "queue-info", hidden: true });
  const findForm = h("form", { id: "find", class: "card find", "aria-labelledby": "selected-title" },
    selectedTitle, selectedMeta,
    field("Variant", variant),
    field("Opponent", opponent, "Anyone: the next player who is waiting, or a house agent after a short wait."),
    h("div", { class: "row" }, findButton, leaveButton), queueInfo, findHint);

  const search = h("input", {
    id: "search", type: "search", name: "search", autocomplete: "off", placeholder: "e.g. connect, poker, sudoku",
    "aria-controls": "games",
  });
  const seats = h("select", { id: "seats", name: "seats" },
    h("option", { value: "" }, "Any"), h("option", { value: "1" }, "Single-player"),
    h("option", { value: "2" }, "Two players"), h("option", { value: "3" }, "Three or more"));
  const gamesStatus = h("p", { id: "games-status", class: "muted", "aria-live": "polite" },
    "Loading the game list… (a new server checks every game once; this can take a minute)");
  const list = h("ul", { id: "games", class: "games" });

  root.append(
    h("h1", {}, "Play"),
    resumeBanner,
    h("section", { class: "card", "aria-labelledby": "you-title" }, h("h2", { id: "you-title" }, "You"), joinForm, signedIn),
    h("section", { class: "lobby", "aria-labelledby": "find-title" },
      h("h2", { id: "find-title" }, "Find a game"),
      findForm,
      h("div", { class: "filters row" }, field("Search games", search), field("Players", seats)),
      gamesStatus, list),
  );

  let all = []; // families
  let house = [];
  let connected = [];

  // --- behaviour -----------------------------------------------------------------------------
  function familyOf(env) {
    return all.find((f) => f.entries.some((e) => e.env_id === env));
  }

  function choose(env, { scroll = false } = {}) {
    const family = familyOf(env) ?? familyOf("TicTacToe-v0") ?? all[0];
    if (!family) return;
    if (!family.entries.some((e) => e.env_id === env)) env = family.main.env_id;
    chosenEnv = env;
    selectedTitle.textContent = family.family;
    const bits = [playerCount(family.players), family.singlePlayer ? "single-player" : null, family.description || null];
    selectedMeta.textContent = bits.filter(Boolean).join(" · ");
    variant.replaceChildren(...family.entries.map((e) =>
      h("option", { value: e.env_id, selected: e.env_id === env }, `${variantLabel(e.variant)} — ${e.env_id}`)));
    variant.disabled = family.entries.length === 1;
    for (const button of list.querySelectorAll("button.family")) {
      button.setAttribute("aria-pressed", String(button.dataset.family === family.family));
    }
    updateOpponents();
    update();
    if (scroll) findForm.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function entry() {
    return all.flatMap((f) => f.entries).find((e) => e.env_id === variant.value);
  }

  function updateOpponents() {
    const keep = opponent.value;
    const single = entry()?.single_player;
    const me = session.identity;
    const others = connected.filter((n) => n !== me && !house.includes(n));
    const options = [h("option", { value: "" }, single ? "Nobody (single-player game)" : "Anyone")];
    if (house.length) {
      options.push(h("optgroup", { label: "House agents (always ready)" },
        house.map((n) => h("option", { value: n }, n))));
    }
    if (others.length) {
      options.push(h("optgroup", { label: "Connected now" }, others.map((n) => h("option", { value: n }, n))));
    }
    opponent.replaceChildren(...options);
    opponent.value = [...opponent.options].some((o) => o.value === keep) && !single ? keep : "";
    opponent.disabled = Boolean(single);
  }

  function filter() {
    const words = search.value.trim().split(/\s+/).map(normalise).filter(Boolean);
    const wanted = seats.value;
    let shown = 0;
    for (const item of list.children) {
      const family = all[Number(item.dataset.index)];
      const seatsOk = !wanted || (wanted === "1" ? family.players.includes(1)
        : wanted === "2" ? family.players.includes(2) : family.players.some((n) => n >= 3));
      const visible = seatsOk && words.every((w) => family.search.includes(w));
      item.hidden = !visible;
      if (visible) shown++;
    }
    gamesStatus.textContent = shown === all.length ? `${all.length} games. Variants are listed under each game.`
      : shown ? `${shown} of ${all.length} games match.` : "No game matches; try fewer letters.";
  }

  function renderList() {
    list.replaceChildren(...all.map((family, index) => h("li", { "data-index": index },
      h("button", {
        type: "button", class: "family", "data-family": family.family, "data-env": family.main.env_id,
        "aria-pressed": "false", onclick: () => choose(family.main.env_id, { scroll: true }),
      },
      h("span", { class: "family-name" }, family.family),
      h("span", { class: "family-meta" }, playerCount(family.players),
        family.entries.length > 1 ? ` · ${family.entries.length} variants` : ""),
      family.singlePlayer ? h("span", { class: "badge" }, "single-player") : null,
      family.description ? h("span", { class: "family-desc" }, family.description) : null))));
    filter();
  }

  async function loadGames() {
    try {
      all = families(await api.games());
    } catch (error) {
      gamesStatus.replaceChildren(`Could not load the game list: ${error.message} `,
        h("button", { type: "button", onclick: () => { gamesStatus.textContent = "Loading the game list…"; loadGames(); } },
          "Try again"));
      return;
    }
    renderList();
    choose(chosenEnv);
  }

  async function loadOpponents() {
    try {
      const [h1, online] = await Promise.all([api.house(), api.online().catch(() => ({ connected: [], house: [] }))]);
      house = h1.map((a) => a.name);
      connected = online.connected ?? [];
      updateOpponents();
    } catch { /* the lobby still works with "Anyone" */ }
  }

  function update() {
    const state = session.state;
    const online = state === "online";
    joinForm.hidden = online || state === "reconnecting";
    signedIn.hidden = !joinForm.hidden;
    joinButton.disabled = state === "connecting";
    identity.textContent = session.identity ? `Playing as ${session.identity}` : "";
    const queued = Boolean(session.queue);
    const playing = Boolean(session.game);
    findButton.disabled = !online || queued || playing || !variant.value;
    leaveButton.hidden = !queued;
    queueInfo.hidden = !queued;
    queueInfo.textContent = queued ? session.status : "";
    findHint.textContent = !online ? "Join with a name first." : playing ? "Finish your game in progress first." : "";
    resumeBanner.hidden = !playing;
    if (playing) {
      resumeBanner.replaceChildren(`Your game ${session.game.id} (${session.game.env}) is in progress. `,
        h("a", { href: `#/game/${session.game.id}` }, "Go to your game"));
    }
  }

  joinForm.addEventListener("submit", (e) => {
    e.preventDefault();
    session.join(name.value);
  });
  signOut.addEventListener("click", () => {
    session.signOut();
    name.focus();
  });
  findForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!variant.value) return;
    session.queueFor([variant.value], opponent.value);
  });
  leaveButton.addEventListener("click", () => {
    session.leave();
    findButton.focus();
  });
  variant.addEventListener("change", () => choose(variant.value));
  search.addEventListener("input", filter);
  seats.addEventListener("change", filter);

  const onChange = (e) => {
    update();
    if (e.detail?.what === "welcome") updateOpponents();
  };
  session.addEventListener("change", onChange);
  const timer = setInterval(loadOpponents, 5000);
  update();
  loadGames();
  loadOpponents();
  return {
    unmount() {
      session.removeEventListener("change", onChange);
      clearInterval(timer);
    },
  };
}
