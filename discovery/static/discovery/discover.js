/* The discovery page: pick interests (and how much), save them, see suggestions; opening or
 * saving a suggestion records a signal with the decision that served it.
 *
 *   PUT  /api/discovery/me/interests  {"interests": {slug: affinity}} -> {"interests": {...}}
 *   GET  /api/discovery/suggestions   -> {decision_id, personal, items: [{id, name, kind, category, category_name}]}
 *   POST /api/discovery/signals       {"candidate": id, "kind": "click"|"save", "decision_id"} -> 201
 *
 * Errors come in the API's one shape; a 429 (too many requests by this member) says so.
 * Uses window.MP from static/proposals/common.js (fetch with the CSRF token).
 */
(function () {
  "use strict";

  var root = document.getElementById("discover-app");
  if (!root || !window.MP) return;
  var MP = window.MP;
  var $ = function (testid, scope) {
    return MP.byTestId(testid, scope || root);
  };
  var URLS = {
    interests: root.getAttribute("data-interests-url"),
    suggestions: root.getAttribute("data-suggestions-url"),
    signals: root.getAttribute("data-signals-url"),
  };
  var NETWORK_ERROR = "Could not reach the server. Check your connection and try again.";
  var KIND_LABELS = { listing: "Listing", service: "Service", event: "Event", community: "Community" };

  var form = $("interests-form");
  var saveButton = $("interests-save");
  var saveStatus = $("interests-status");
  var saveError = $("interests-error");
  var list = $("suggestion-list");
  var loading = $("suggestions-loading");
  var summary = $("suggestions-summary");
  var errorBox = $("suggestions-error-box");
  var errorText = $("suggestions-error");
  var empty = $("suggestions-empty");
  var refreshButton = $("suggestions-refresh");

  var decisionId = null; // the decision that served the slate on screen
  var generation = 0; // answers to an older load are dropped

  function message(result) {
    var text = MP.errorMessage(result);
    if (result.status === 429) return "Too many requests: slow down a little. " + text;
    return text;
  }

  // --- interests ---------------------------------------------------------------------------
  function syncLevels() {
    var boxes = form.querySelectorAll('input[name="interest"]');
    for (var i = 0; i < boxes.length; i++) {
      var level = form.querySelector('select[name="level-' + boxes[i].value + '"]');
      if (level) level.disabled = !boxes[i].checked;
    }
  }

  function chosen() {
    var out = {};
    var boxes = form.querySelectorAll('input[name="interest"]:checked');
    for (var i = 0; i < boxes.length; i++) {
      var level = form.querySelector('select[name="level-' + boxes[i].value + '"]');
      out[boxes[i].value] = level ? Number(level.value) : 0.6;
    }
    return out;
  }

  function showSaveError(text) {
    saveError.textContent = text;
    MP.show(saveError, Boolean(text));
  }

  form.addEventListener("change", function (event) {
    if (event.target && event.target.name === "interest") syncLevels();
    saveStatus.textContent = "";
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    saveButton.disabled = true;
    saveButton.setAttribute("aria-busy", "true");
    showSaveError("");
    saveStatus.textContent = "Saving…";
    MP.api("PUT", URLS.interests, { interests: chosen() })
      .then(function (result) {
        saveButton.disabled = false;
        saveButton.removeAttribute("aria-busy");
        if (!result.ok || !result.body) {
          saveStatus.textContent = "";
          showSaveError(message(result));
          return;
        }
        var count = Object.keys(result.body.interests || {}).length;
        saveStatus.textContent =
          count === 0 ? "Saved: no interests." : "Saved " + count + (count === 1 ? " interest." : " interests.");
        load();
      })
      .catch(function () {
        saveButton.disabled = false;
        saveButton.removeAttribute("aria-busy");
        saveStatus.textContent = "";
        showSaveError(NETWORK_ERROR);
      });
  });

  // --- suggestions -------------------------------------------------------------------------
  function setState(state) {
    root.setAttribute("data-state", state);
    MP.show(loading, state === "loading");
    MP.show(list, state === "ready");
    MP.show(empty, state === "empty");
    MP.show(errorBox, state === "error");
  }

  function load() {
    var mine = ++generation;
    setState("loading");
    summary.textContent = "";
    refreshButton.disabled = true;
    MP.api("GET", URLS.suggestions)
      .then(function (result) {
        if (mine !== generation) return;
        refreshButton.disabled = false;
        if (!result.ok || !result.body || !Array.isArray(result.body.items)) {
          errorText.textContent = message(result);
          setState("error");
          return;
        }
        render(result.body);
      })
      .catch(function () {
        if (mine !== generation) return;
        refreshButton.disabled = false;
        errorText.textContent = NETWORK_ERROR;
        setState("error");
      });
  }

  function render(body) {
    decisionId = body.decision_id || null;
    list.textContent = "";
    if (!body.items.length) {
      setState("empty");
      return;
    }
    body.items.forEach(function (item, index) {
      list.appendChild(card(item, index + 1));
    });
    var n = body.items.length;
    summary.textContent =
      n +
      (n === 1 ? " suggestion" : " suggestions") +
      (body.personal ? " picked for your interests." : " popular with members (pick interests for your own).");
    setState("ready");
  }

  function card(item, rank) {
    var li = MP.el("li", "match suggestion");
    li.setAttribute("data-testid", "suggestion");
    li.setAttribute("data-candidate-id", String(item.id));
    var badge = MP.el("span", "match__rank", String(rank));
    badge.setAttribute("aria-hidden", "true");
    li.appendChild(badge);

    var body = MP.el("div", "match__body");
    var open = MP.el("button", "suggestion__open", item.name);
    open.type = "button";
    open.setAttribute("data-testid", "suggestion-open");
    body.appendChild(open);
    var meta = MP.el(
      "p",
      "suggestion__meta",
      (KIND_LABELS[item.kind] || item.kind) + " · " + (item.category_name || item.category)
    );
    meta.setAttribute("data-testid", "suggestion-meta");
    body.appendChild(meta);

    var actions = MP.el("div", "suggestion__actions");
    var save = MP.el("button", "button button--secondary", "Save");
    save.type = "button";
    save.setAttribute("data-testid", "suggestion-save");
    save.setAttribute("aria-label", "Save " + item.name);
    actions.appendChild(save);
    var done = MP.el("p", "suggestion__done");
    done.setAttribute("role", "status");
    done.setAttribute("data-testid", "suggestion-done");
    actions.appendChild(done);
    body.appendChild(actions);

    var error = MP.el("p", "form-error");
    error.setAttribute("role", "alert");
    error.setAttribute("data-testid", "suggestion-error");
    error.hidden = true;
    body.appendChild(error);

    var served = decisionId;
    open.addEventListener("click", function () {
      signal(item, "click", served, open, done, error, "Opened: we will suggest more like this.");
    });
    save.addEventListener("click", function () {
      signal(item, "save", served, save, done, error, "Saved.");
    });
    li.appendChild(body);
    return li;
  }

  function signal(item, kind, served, trigger, done, error, doneText) {
    var payload = { candidate: item.id, kind: kind };
    if (served) payload.decision_id = served;
    trigger.disabled = true;
    MP.show(error, false);
    MP.api("POST", URLS.signals, payload)
      .then(function (result) {
        if (!result.ok) {
          trigger.disabled = false;
          error.textContent = message(result);
          MP.show(error, true);
          return;
        }
        done.textContent = doneText;
        if (kind === "save") trigger.textContent = "Saved";
        else trigger.disabled = false;
      })
      .catch(function () {
        trigger.disabled = false;
        error.textContent = NETWORK_ERROR;
        MP.show(error, true);
      });
  }

  refreshButton.addEventListener("click", load);
  $("suggestions-retry").addEventListener("click", load);
  syncLevels();
  load();
})();
