// The dashboard's shared part: the token, calls to the REST API, polling,
// formatting, and building DOM nodes (always with textContent: a value read
// from the API is never parsed as HTML).
"use strict";

window.Dash = (() => {
  const body = document.body;
  const ROOT = body.dataset.root || "";
  const AUTH = body.dataset.auth === "on";
  const KEY = "orchestrator.token";
  const STATES = ["NOT_STARTED", "IDLE", "WAITING", "RUNNING_DELAYED", "RUNNING", "PAUSED",
                  "SUCCESS", "ERROR", "CANCELLED", "SKIPPED"];
  const ROLES = ["viewer", "operator", "admin"];
  let identity = null;

  class ApiError extends Error {
    constructor(status, message, kind) {
      super(message);
      this.status = status;
      this.kind = kind;
    }
  }

  function token() { return sessionStorage.getItem(KEY); }

  // -- DOM ------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "onclick") node.addEventListener("click", v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const $ = (selector, root) => (root || document).querySelector(selector);

  // Replaces node's children, leaving out null, undefined and false.
  function fill(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
    return node;
  }

  function badge(state, label) {
    return el("span", {class: "state", "data-state": state || "NOT_STARTED"},
              label || (state || "NOT STARTED").replace("_", " "));
  }

  // The colours live in dashboard.css (one place); the graph reads them from there.
  function colors(state) {
    const css = getComputedStyle(document.documentElement);
    const get = (part) => css.getPropertyValue(`--${state}-${part}`).trim();
    return {bg: get("bg"), border: get("border"), text: get("text")};
  }

  function legend(container, states) {
    container.replaceChildren(...states.map((s) => el("li", {}, badge(s))));
  }

  // -- formatting -----------------------------------------------------------------------
  const pad = (n, w = 2) => String(n).padStart(w, "0");

  function time(iso, withMs) {
    if (!iso) return "";
    const d = new Date(iso);
    const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return withMs ? `${clock}.${pad(d.getMilliseconds(), 3)}` : `${day} ${clock}`;
  }

  function seconds(from, to) {
    if (!from) return null;
    const end = to ? new Date(to) : new Date();
    return Math.max(0, (end - new Date(from)) / 1000);
  }

  function duration(s) {
    if (s === null || s === undefined) return "";
    if (s < 10) return `${s.toFixed(2)} s`;
    if (s < 60) return `${s.toFixed(1)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${pad(Math.floor(s % 60))} s`;
    return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  }

  function json(value) {
    return value === undefined ? "" : JSON.stringify(value, null, 2);
  }

  // -- messages -------------------------------------------------------------------------
  let flashTimer = null;

  function flash(message, kind) {
    const box = $("#flash");
    box.textContent = message;
    box.dataset.kind = kind || "error";
    delete box.dataset.poll;
    box.hidden = false;
    clearTimeout(flashTimer);
    if (kind === "info") flashTimer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  // -- the API --------------------------------------------------------------------------
  async function api(path, options) {
    const {method = "GET", body: data} = options || {};
    const headers = {Accept: "application/json"};
    if (AUTH) headers.Authorization = `Bearer ${token() || ""}`;
    if (data !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(ROOT + path, {method, headers, cache: "no-store",
                                            body: data === undefined ? undefined
                                              : JSON.stringify(data)});
    } catch (e) {
      throw new ApiError(0, `the server did not answer (${e.message})`, "NetworkError");
    }
    if (response.status === 204) return null;
    let payload = null;
    try { payload = await response.json(); } catch (e) { payload = null; }
    if (!response.ok) {
      const message = (payload && payload.message) || `${response.status} ${response.statusText}`;
      const error = new ApiError(response.status, message, payload && payload.error);
      if (response.status === 401 && AUTH) signIn(message);
      throw error;
    }
    return payload;
  }

  const q = (params) => {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") s.set(k, v);
    const text = s.toString();
    return text ? `?${text}` : "";
  };

  // Runs fn now and then every ms (a number, or a function giving it) after it finished (never two at once); stops on 401.
  // now() runs it again at once (after the run in flight, if any), even when stopped.
  function poll(fn, ms) {
    let stopped = false;
    let timer = null;
    let busy = false;
    let again = false;
    async function tick() {
      clearTimeout(timer);
      timer = null;
      busy = true;
      const box = $("#flash");
      try {
        await fn();
        if (box.dataset.poll) { box.hidden = true; delete box.dataset.poll; }
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) stopped = true;
        else { flash(e.message); box.dataset.poll = "1"; }
      }
      busy = false;
      if (again) { again = false; tick(); return; }
      if (!stopped) timer = setTimeout(tick, typeof ms === "function" ? ms() : ms);
    }
    tick();
    return {
      stop() { stopped = true; clearTimeout(timer); timer = null; },
      now() { if (busy) again = true; else tick(); },
    };
  }

  // -- signing in -----------------------------------------------------------------------
  let ready = null;

  function signIn(message) {
    sessionStorage.removeItem(KEY);
    identity = null;
    $("#main").hidden = true;
    $("#identity").hidden = true;
    $("#login").hidden = false;
    const error = $("#login-error");
    error.textContent = message || "";
    error.hidden = !message;
    $("#token").focus();
  }

  function can(role) {
    return identity !== null && ROLES.indexOf(identity.role) >= ROLES.indexOf(role);
  }

  async function whoami() {
    identity = await api("/v2/whoami");
    $("#login").hidden = true;
    $("#main").hidden = false;
    body.dataset.role = identity.role;
    if (identity.auth) {
      const who = identity.name && identity.name !== identity.project ? `${identity.name} · ` : "";
      $("#identity-text").textContent = `${who}project ${identity.project} · ${identity.role}`;
      $("#identity").hidden = false;
    }
    return identity;
  }

  // Calls onReady(identity) once a token is known to work (at once with --no-auth).
  function start(onReady) {
    $("#login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("#token").value.trim());
      $("#token").value = "";
      try {
        await whoami();
      } catch (e) {
        if (e.status !== 401) signIn(e.message);
        return;
      }
      if (ready) { const go = ready; ready = null; go(identity); }
    });
    $("#sign-out").addEventListener("click", () => {
      signIn("");
      window.location.reload();
    });
    ready = onReady;
    if (AUTH && !token()) { signIn(""); return; }
    whoami().then(() => { const go = ready; ready = null; go(identity); }, (e) => {
      if (e.status !== 401) flash(e.message);
    });
  }

  return {ApiError, STATES, api, q, poll, start, can, el, $, fill, badge, colors, legend, time,
          seconds, duration, json, flash, root: ROOT};
})();
