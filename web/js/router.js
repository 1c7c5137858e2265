// Hash routing: every view has its own link (#/, #/game/12, #/replay/12/3, #/leaderboard?env=...).

const routes = [];
let current = null; // {route, instance, path}

/** Register `view` for paths matching `pattern`: view.mount(root, params, query) -> {update?, unmount?}. */
export function route(pattern, view) {
  routes.push({ pattern, view });
}

/** The current hash as {path, query}. */
export function location() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = hash.split("?");
  return { path: path || "/", query: new URLSearchParams(search) };
}

/** Go to `hash` ("#/live"); with `replace`, without a new history entry. */
export function navigate(hash, { replace = false } = {}) {
  if (window.location.hash === hash) return;
  if (replace) {
    history.replaceState(null, "", hash);
    render();
  } else {
    window.location.hash = hash;
  }
}

/** Show the view of the current hash in `root` (an update in place when it is the same view). */
export function render(root = document.getElementById("view")) {
  const { path, query } = location();
  let found = null;
  let params = [];
  for (const candidate of routes) {
    const match = candidate.pattern.exec(path);
    if (match) {
      found = candidate;
      params = match.slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p)));
      break;
    }
  }
  found ??= routes.find((r) => r.pattern.source === "^\\/$");
  if (current && current.route === found && current.instance.update && current.key === params[0]) {
    current.instance.update(params, query);
    return;
  }
  current?.instance.unmount?.();
  root.replaceChildren();
  const instance = found.view.mount(root, params, query) ?? {};
  current = { route: found, instance, key: params[0] };
  const heading = root.querySelector("h1");
  if (heading && document.activeElement !== document.querySelector("#name")) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
  document.dispatchEvent(new CustomEvent("routechange", { detail: { path } }));
}

export function start() {
  window.addEventListener("hashchange", () => render());
  render();
}
