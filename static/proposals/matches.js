/* The matches page: my matches feed, filtered, sorted and paged; accept or reject a
 * pending match, see mutual connections, follow all of an accepted match's connections.
 *
 *   GET  /api/matches/?status=&event=&source=&min_compatibility=&sort=&page_size=&cursor=
 *                                          -> {results: [item], next_cursor, page_size, sort}
 *   GET  /api/matches/<id>/                -> item
 *   POST /api/matches/<id>/accept|reject   -> item (409 once decided or expired)
 *   POST /api/matches/<id>/follow-all      -> {followed, already_followed, skipped_privacy, network_visible}
 *   GET  /api/matches/mutual-connections?member=<id> -> {member, visible, count, results}
 *
 * The filters, the sort and the page size live in the page's query string (a reload keeps
 * them; the API validates what is there). Paging is by cursor: the cursors of the pages
 * before this one are kept in history.state, so Previous (and the browser's Back) work.
 */
(function () {
  "use strict";

  var root = document.getElementById("matches-app");
  if (!root || !window.MP) return;
  var MP = window.MP;
  var $ = function (testid, scope) {
    return MP.byTestId(testid, scope || root);
  };

  var URLS = {
    feed: root.getAttribute("data-feed-url"),
    detail: root.getAttribute("data-detail-url"),
    accept: root.getAttribute("data-accept-url"),
    reject: root.getAttribute("data-reject-url"),
    followAll: root.getAttribute("data-follow-all-url"),
    mutual: root.getAttribute("data-mutual-url"),
    conversation: root.getAttribute("data-conversation-url"),
  };
  // The page's query parameters (the API's, minus the cursor), in the order they are written.
  var PARAMS = ["status", "source", "event", "min_compatibility", "sort", "page_size"];
  var DEFAULTS = { sort: "newest", page_size: "20" };
  var STATUS_LABELS = { pending: "Pending", accepted: "Accepted", rejected: "Turned down", expired: "Expired" };
  var DECISION_LABELS = { accept: "Accepted", reject: "Turned down" };
  var SOURCE_LABELS = { proposal: "Community proposal", event: "Event" };
  var TICK_MS = 30 * 1000;
  var NETWORK_ERROR = "Could not reach the server. Check your connection and try again.";

  var form = $("matches-filters");
  var statusBoxes = form.querySelectorAll('input[name="status"]');
  var sourceSelect = $("filter-source");
  var eventSelect = $("filter-event");
  var minInput = $("filter-min-compatibility");
  var minError = $("filter-min-error");
  var sortSelect = $("filter-sort");
  var sizeSelect = $("filter-page-size");
  var list = $("match-list");
  var resultsTitle = document.getElementById("results-title");
  var loading = $("matches-loading");
  var summary = $("matches-summary");
  var errorBox = $("matches-error-box");
  var errorText = $("matches-error");
  var empty = $("matches-empty");
  var pager = $("matches-pager");
  var prevButton = $("page-previous");
  var nextButton = $("page-next");
  var pageNumber = $("page-number");
  var firstPageButton = $("matches-first-page");

  var view = {
    params: {}, // the filters as in the query string (strings, unchecked: the API checks them)
    stack: [null], // cursors of the pages so far; the last one is this page's (null: the first)
    known: true, // false when the page came from a bare cursor in the URL (its number is unknown)
    nextCursor: null,
  };
  var generation = 0; // answers to an older load are dropped
  var items = {}; // match_id -> the item as last rendered
  var deadlines = {}; // match_id -> performance.now() at which a pending match expires

  // --- the query string ---------------------------------------------------------------
  function encode(value) {
    return encodeURIComponent(value).replace(/%2C/gi, ",");
  }

  function queryString(params, cursor) {
    var parts = [];
    PARAMS.forEach(function (name) {
      var value = params[name];
      if (value === undefined || value === null || value === "") return;
      if (DEFAULTS[name] === value) return;
      parts.push(name + "=" + encode(value));
    });
    if (cursor) parts.push("cursor=" + encode(cursor));
    return parts.length ? "?" + parts.join("&") : "";
  }

  function readLocation() {
    var query = new URLSearchParams(window.location.search);
    var params = {};
    var statuses = query
      .getAll("status")
      .join(",")
      .split(",")
      .map(function (s) {
        return s.trim();
      })
      .filter(Boolean);
    if (statuses.length) params.status = statuses.join(",");
    PARAMS.forEach(function (name) {
      if (name === "status") return;
      var value = (query.get(name) || "").trim();
      if (value) params[name] = value;
    });
    var cursor = query.get("cursor") || null;
    var saved = window.history.state;
    if (
      saved &&
      saved.page === "matches" &&
      Array.isArray(saved.stack) &&
      saved.stack.length &&
      saved.stack[saved.stack.length - 1] === cursor
    ) {
      return { params: params, stack: saved.stack.slice(), known: saved.known !== false };
    }
    return { params: params, stack: cursor ? [null, cursor] : [null], known: !cursor };
  }

  function writeLocation(push) {
    var url = window.location.pathname + queryString(view.params, current());
    var state = { page: "matches", stack: view.stack.slice(), known: view.known };
    if (push) window.history.pushState(state, "", url);
    else window.history.replaceState(state, "", url);
  }

  function current() {
    return view.stack[view.stack.length - 1];
  }

  // --- the filter controls <-> the query ---------------------------------------------
  function selectValue(select, value, labelFor) {
    if (!value) {
      select.value = select.options.length ? select.options[0].value : "";
      return;
    }
    var found = false;
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === value) found = true;
    }
    if (!found && labelFor) {
      var option = MP.el("option", null, labelFor(value));
      option.value = value;
      select.appendChild(option);
      found = true;
    }
    if (found) select.value = value;
  }

  function percentOf(fraction) {
    var number = Number(fraction);
    if (fraction === undefined || fraction === "" || !isFinite(number)) return "";
    return String(Math.round(number * 1000) / 10);
  }

  function controlsFromParams(params) {
    var statuses = (params.status || "").split(",");
    for (var i = 0; i < statusBoxes.length; i++) {
      statusBoxes[i].checked = statuses.indexOf(statusBoxes[i].value) !== -1;
    }
    selectValue(sourceSelect, params.source || "");
    selectValue(eventSelect, /^\d+$/.test(params.event || "") ? params.event : "", function (id) {
      return "Event #" + id;
    });
    minInput.value = percentOf(params.min_compatibility);
    fieldError(minInput, minError, "");
    selectValue(sortSelect, params.sort || DEFAULTS.sort);
    var size = params.page_size || DEFAULTS.page_size;
    selectValue(sizeSelect, /^\d+$/.test(size) ? String(parseInt(size, 10)) : DEFAULTS.page_size, function (n) {
      return n;
    });
    eventSelect.disabled = sourceSelect.value === "proposal";
  }

  function fieldError(input, node, message) {
    node.textContent = message;
    MP.show(node, Boolean(message));
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  /* The controls as query parameters, or null when the minimum is not a valid percentage. */
  function paramsFromControls() {
    var params = {};
    var statuses = [];
    for (var i = 0; i < statusBoxes.length; i++) {
      if (statusBoxes[i].checked) statuses.push(statusBoxes[i].value);
    }
    if (statuses.length) params.status = statuses.join(",");
    if (sourceSelect.value) params.source = sourceSelect.value;
    if (eventSelect.value && sourceSelect.value !== "proposal") params.event = eventSelect.value;
    var raw = minInput.value.trim();
    if (raw || (minInput.validity && minInput.validity.badInput)) {
      var pct = Number(raw);
      if (!raw || !isFinite(pct) || pct < 0 || pct > 100) {
        fieldError(minInput, minError, "Enter a percentage from 0 to 100, or leave it empty.");
        return null;
      }
      if (pct > 0) params.min_compatibility = String(Math.round(pct * 10) / 1000);
    }
    fieldError(minInput, minError, "");
    params.sort = sortSelect.value;
    params.page_size = sizeSelect.value;
    return params;
  }

  function filtered(params) {
    return Boolean(params.status || params.source || params.event || params.min_compatibility);
  }

  function applyControls() {
    var params = paramsFromControls();
    if (!params) {
      minInput.focus();
      return;
    }
    eventSelect.disabled = sourceSelect.value === "proposal";
    if (queryString(params, null) === queryString(view.params, null) && view.stack.length === 1) return;
    view.params = params;
    view.stack = [null];
    view.known = true;
    writeLocation(true);
    load();
  }

  function resetFilters() {
    view.params = {};
    view.stack = [null];
    view.known = true;
    controlsFromParams(view.params);
    writeLocation(true);
    load();
  }

  // --- page states ----------------------------------------------------------------------
  function setState(state) {
    root.setAttribute("data-state", state);
    root.setAttribute("aria-busy", state === "loading" ? "true" : "false");
    MP.show(loading, state === "loading");
    MP.show(list, state === "ready");
    MP.show(empty, state === "empty");
    MP.show(errorBox, state === "error");
    if (state !== "ready") MP.show(pager, false);
  }

  function showError(message) {
    errorText.textContent = message;
    summary.textContent = "";
    MP.show(firstPageButton, view.stack.length > 1);
    setState("error");
  }

  function pageLabel() {
    return view.known ? "Page " + view.stack.length : "A later page";
  }

  // --- time left ---------------------------------------------------------------------------
  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  /* 2 days and more: "2 d 4 h left"; an hour and more: "3 h 12 min left"; then minutes. */
  function timeLeftText(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var days = Math.floor(s / 86400);
    var hours = Math.floor((s % 86400) / 3600);
    var minutes = Math.floor((s % 3600) / 60);
    if (days >= 1) return days + " d " + hours + " h left";
    if (hours >= 1) return hours + " h " + minutes + " min left";
    if (minutes >= 1) return minutes + " min left";
    return "Less than a minute left";
  }

  function secondsLeft(matchId) {
    return (deadlines[matchId] - performance.now()) / 1000;
  }

  function tick() {
    Object.keys(deadlines).forEach(function (matchId) {
      var row = list.querySelector('[data-match-id="' + matchId + '"]');
      if (!row) {
        delete deadlines[matchId];
        return;
      }
      var left = secondsLeft(matchId);
      if (left <= 0) {
        // The deadline passed while the page was open: the match can no longer be answered.
        var item = items[matchId];
        delete deadlines[matchId];
        if (item) {
          var expired = Object.assign({}, item, { status: "expired", seconds_left: null });
          renderCard(expired, row);
        }
        return;
      }
      var node = $("match-time-left", row);
      if (node) node.textContent = timeLeftText(left);
    });
  }

  // --- a card ----------------------------------------------------------------------------
  function fact(label, value, testid) {
    var wrap = MP.el("div", "fact");
    wrap.appendChild(MP.el("dt", null, label));
    var dd = MP.el("dd", null, value);
    dd.setAttribute("data-testid", testid);
    wrap.appendChild(dd);
    return wrap;
  }

  function button(text, className, testid) {
    var node = MP.el("button", "button " + (className || ""), text);
    node.type = "button";
    node.setAttribute("data-testid", testid);
    return node;
  }

  function urlFor(template, id) {
    return template.replace("__id__", encodeURIComponent(id));
  }

  function renderProfile(body, other) {
    var interests = other.interests || [];
    if (interests.length) {
      var chips = MP.el("ul", "chips member-match__chips");
      chips.setAttribute("aria-label", "Interests");
      chips.setAttribute("data-testid", "match-interests");
      interests.forEach(function (interest) {
        chips.appendChild(MP.el("li", "chip", interest));
      });
      body.appendChild(chips);
    }
    if (other.bio) {
      var bio = MP.el("p", "member-match__bio", other.bio);
      bio.setAttribute("data-testid", "match-bio");
      body.appendChild(bio);
    }
    var note = null;
    if (other.privacy === "private") note = "Private profile: only their name is shown.";
    else if (other.privacy === "connections" && other.bio === undefined) {
      note = "Shares their profile with connections only.";
    }
    if (note) {
      var hint = MP.el("p", "hint", note);
      hint.setAttribute("data-testid", "match-private");
      body.appendChild(hint);
    }
  }

  function renderCard(item, existing) {
    var other = item.with || { display_name: "A member", privacy: "private" };
    var name = other.display_name || "A member";
    var id = item.match_id;
    items[id] = item;
    delete deadlines[id];

    var li = MP.el("li", "match member-match feed-card");
    li.setAttribute("data-testid", "match-row");
    li.setAttribute("data-match-id", id);
    li.setAttribute("data-status", item.status);
    li.setAttribute("data-source", item.source);
    li.setAttribute("data-compatibility", String(item.compatibility));
    li.setAttribute("aria-labelledby", "match-name-" + id);

    var avatar = MP.el("span", "avatar avatar--lg", MP.initials(name));
    avatar.setAttribute("aria-hidden", "true");
    if (other.privacy === "private") avatar.classList.add("avatar--private");
    li.appendChild(avatar);

    var body = MP.el("div", "match__body");
    var head = MP.el("div", "match__head");
    var title = MP.el("h3", "match__name", name);
    title.id = "match-name-" + id;
    title.setAttribute("data-testid", "match-name");
    head.appendChild(title);
    var status = MP.el("span", "status-pill status-pill--" + item.status, STATUS_LABELS[item.status] || item.status);
    status.setAttribute("data-testid", "match-status");
    head.appendChild(status);
    body.appendChild(head);

    // Compatibility, where the match comes from, and the time left to answer.
    var meta = MP.el("div", "feed-card__meta");
    var pct = Math.round((Number(item.compatibility) || 0) * 100);
    var compat = MP.el("span", "feed-card__compat");
    var bar = MP.el("span", "bar");
    bar.setAttribute("aria-hidden", "true");
    var fill = MP.el("span", "bar__fill");
    fill.style.width = Math.min(Math.max(pct, 0), 100) + "%";
    bar.appendChild(fill);
    compat.appendChild(bar);
    var pctNode = MP.el("span", "match__pct", pct + "%");
    pctNode.setAttribute("data-testid", "match-compatibility");
    compat.appendChild(pctNode);
    compat.appendChild(MP.el("span", "feed-card__muted", "compatible"));
    meta.appendChild(compat);

    var sourceText = SOURCE_LABELS[item.source] || item.source;
    if (item.source === "event" && item.event) sourceText = "Event: " + item.event.name;
    var source = MP.el("span", "feed-card__source", sourceText);
    source.setAttribute("data-testid", "match-source");
    meta.appendChild(source);

    if (item.status === "pending" && typeof item.seconds_left === "number") {
      deadlines[id] = performance.now() + item.seconds_left * 1000;
      var left = MP.el("span", "feed-card__left", timeLeftText(item.seconds_left));
      left.setAttribute("data-testid", "match-time-left");
      left.setAttribute("role", "timer");
      if (item.expires_at) left.title = "Expires " + MP.formatDateTime(new Date(item.expires_at));
      if (item.seconds_left < 86400) left.classList.add("feed-card__left--soon");
      meta.appendChild(left);
    }
    body.appendChild(meta);

    renderProfile(body, other);

    var facts = MP.el("dl", "facts");
    facts.appendChild(fact("You", DECISION_LABELS[item.my_decision] || "Not answered", "match-my-decision"));
    facts.appendChild(fact("They", DECISION_LABELS[item.their_decision] || "Not answered", "match-their-decision"));
    body.appendChild(facts);
    if (item.status === "pending" && item.my_decision === "accept") {
      var waiting = MP.el("p", "hint", "You accepted; waiting for " + name + " to answer.");
      waiting.setAttribute("data-testid", "match-waiting");
      body.appendChild(waiting);
    }

    var actions = MP.el("div", "member-match__actions");
    if (item.status === "pending" && !item.my_decision) {
      var accept = button("Accept", "", "match-accept");
      accept.setAttribute("aria-label", "Accept the match with " + name);
      accept.addEventListener("click", function () {
        decide(item, "accept", li);
      });
      var reject = button("Reject", "button--secondary", "match-reject");
      reject.setAttribute("aria-label", "Reject the match with " + name);
      reject.addEventListener("click", function () {
        decide(item, "reject", li);
      });
      actions.appendChild(accept);
      actions.appendChild(reject);
    }
    if (item.conversation_id && (item.status === "pending" || item.status === "accepted")) {
      var link = MP.el("a", "button button--ghost", "Open conversation");
      link.href = urlFor(URLS.conversation, item.conversation_id);
      link.setAttribute("data-testid", "match-conversation");
      link.setAttribute("aria-label", "Open conversation with " + name);
      actions.appendChild(link);
    }
    var count = Number(item.mutual_connections) || 0;
    var mutualButton = button("Mutual connections (" + count + ")", "button--ghost", "match-mutual");
    var panelId = "mutual-" + id;
    mutualButton.setAttribute("aria-expanded", "false");
    mutualButton.setAttribute("aria-controls", panelId);
    actions.appendChild(mutualButton);
    var followButton = null;
    if (item.status === "accepted") {
      followButton = button("Follow all", "button--secondary", "match-follow-all");
      followButton.setAttribute("aria-label", "Follow all of " + name + "’s connections");
      actions.appendChild(followButton);
    }
    body.appendChild(actions);

    var followResult = MP.el("p", "notice feed-card__result");
    followResult.setAttribute("role", "status");
    followResult.setAttribute("data-testid", "match-follow-result");
    followResult.hidden = true;
    body.appendChild(followResult);

    var panel = MP.el("section", "feed-card__mutual");
    panel.id = panelId;
    panel.setAttribute("data-testid", "match-mutual-panel");
    panel.setAttribute("aria-label", "Mutual connections with " + name);
    panel.hidden = true;
    body.appendChild(panel);

    var error = MP.el("p", "form-error");
    error.setAttribute("role", "alert");
    error.setAttribute("data-testid", "match-error");
    error.hidden = true;
    body.appendChild(error);

    mutualButton.addEventListener("click", function () {
      toggleMutual(item, mutualButton, panel);
    });
    if (followButton) {
      followButton.addEventListener("click", function () {
        followAll(item, followButton, followResult, error);
      });
    }

    li.appendChild(body);
    if (!existing) list.appendChild(li);
    else if (existing.parentNode === list) list.replaceChild(li, existing);
    // else: the list was loaded again meanwhile and this card is no longer on it.
    return li;
  }

  function cardError(row, message) {
    var node = $("match-error", row);
    node.textContent = message;
    MP.show(node, Boolean(message));
  }

  function setRowBusy(row, value) {
    var buttons = row.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = value;
    if (value) row.setAttribute("aria-busy", "true");
    else row.removeAttribute("aria-busy");
  }

  // --- accept / reject -----------------------------------------------------------------
  function decide(item, decision, row) {
    setRowBusy(row, true);
    cardError(row, "");
    var url = urlFor(decision === "accept" ? URLS.accept : URLS.reject, item.match_id);
    MP.api("POST", url)
      .then(function (result) {
        if (result.ok && result.body) {
          var fresh = renderCard(result.body, row);
          var focusTarget = fresh.querySelector("a, button");
          if (focusTarget) focusTarget.focus();
          return;
        }
        var message = MP.errorMessage(result);
        if (result.status === 409) {
          // Decided or expired meanwhile: show the match as it is now, with the reason.
          return MP.api("GET", urlFor(URLS.detail, item.match_id)).then(function (latest) {
            var target = row;
            if (latest.ok && latest.body) target = renderCard(latest.body, row);
            else setRowBusy(row, false);
            cardError(target, message);
          });
        }
        setRowBusy(row, false);
        cardError(row, message);
      })
      .catch(function () {
        setRowBusy(row, false);
        cardError(row, NETWORK_ERROR);
      });
  }

  // --- mutual connections ------------------------------------------------------------------
  function toggleMutual(item, toggle, panel) {
    if (toggle.getAttribute("aria-expanded") === "true") {
      toggle.setAttribute("aria-expanded", "false");
      panel.hidden = true;
      return;
    }
    toggle.setAttribute("aria-expanded", "true");
    panel.hidden = false;
    panel.textContent = "";
    panel.setAttribute("aria-busy", "true");
    panel.appendChild(MP.el("p", "loading", "Loading mutual connections…"));
    var memberId = item.with && item.with.member_id;
    MP.api("GET", URLS.mutual + "?member=" + encodeURIComponent(memberId))
      .then(function (result) {
        panel.removeAttribute("aria-busy");
        panel.textContent = "";
        if (!result.ok || !result.body) {
          var error = MP.el("p", "form-error", MP.errorMessage(result));
          error.setAttribute("role", "alert");
          error.setAttribute("data-testid", "match-mutual-error");
          panel.appendChild(error);
          return;
        }
        renderMutual(panel, item, result.body);
      })
      .catch(function () {
        panel.removeAttribute("aria-busy");
        panel.textContent = "";
        var error = MP.el("p", "form-error", NETWORK_ERROR);
        error.setAttribute("role", "alert");
        error.setAttribute("data-testid", "match-mutual-error");
        panel.appendChild(error);
      });
  }

  function renderMutual(panel, item, data) {
    var name = (data.member && data.member.display_name) || (item.with && item.with.display_name) || "This member";
    var heading = MP.el("h4", "feed-card__mutual-title", "Mutual connections");
    panel.appendChild(heading);
    if (!data.visible) {
      var why =
        data.member && data.member.privacy === "connections"
          ? name + " shows their connections only to their own connections."
          : name + " keeps their connections private.";
      var hidden = MP.el("p", "hint", why);
      hidden.setAttribute("data-testid", "match-mutual-hidden");
      panel.appendChild(hidden);
      return;
    }
    var people = data.results || [];
    if (!people.length) {
      var none = MP.el("p", "hint", "You and " + name + " have no connections in common yet.");
      none.setAttribute("data-testid", "match-mutual-none");
      panel.appendChild(none);
      return;
    }
    var ul = MP.el("ul", "mutual-list");
    ul.setAttribute("data-testid", "match-mutual-list");
    people.forEach(function (person) {
      var li = MP.el("li", "mutual-list__item");
      li.setAttribute("data-testid", "match-mutual-person");
      var avatar = MP.el("span", "avatar avatar--sm", MP.initials(person.display_name));
      avatar.setAttribute("aria-hidden", "true");
      li.appendChild(avatar);
      var personName = MP.el("span", "mutual-list__name", person.display_name);
      personName.setAttribute("data-testid", "match-mutual-name");
      li.appendChild(personName);
      ul.appendChild(li);
    });
    panel.appendChild(ul);
    var count = Number(data.count) || 0;
    if (count > people.length) {
      panel.appendChild(MP.el("p", "hint", "and " + plural(count - people.length, "more connection")));
    }
  }

  // --- follow all ------------------------------------------------------------------------
  function followAll(item, trigger, resultNode, error) {
    trigger.disabled = true;
    trigger.setAttribute("aria-busy", "true");
    MP.show(error, false);
    MP.api("POST", urlFor(URLS.followAll, item.match_id))
      .then(function (result) {
        trigger.disabled = false;
        trigger.removeAttribute("aria-busy");
        if (!result.ok || !result.body) {
          error.textContent = MP.errorMessage(result);
          MP.show(error, true);
          return;
        }
        var r = result.body;
        resultNode.textContent = r.network_visible === false
          ? "Their connections are private: nobody to follow."
          : "Followed " +
          (r.followed || 0) +
          " · " +
          (r.already_followed || 0) +
          " already · " +
          (r.skipped_privacy || 0) +
          " hidden by privacy";
        MP.show(resultNode, true);
      })
      .catch(function () {
        trigger.disabled = false;
        trigger.removeAttribute("aria-busy");
        error.textContent = NETWORK_ERROR;
        MP.show(error, true);
      });
  }

  // --- loading a page ------------------------------------------------------------------
  function load(options) {
    var mine = ++generation;
    var focusResults = Boolean(options && options.focus);
    setState("loading");
    list.textContent = "";
    items = {};
    deadlines = {};
    summary.textContent = "Loading matches…";
    var url = URLS.feed + queryString(view.params, current());
    MP.api("GET", url)
      .then(function (result) {
        if (mine !== generation) return;
        if (!result.ok || !result.body || !Array.isArray(result.body.results)) {
          showError(MP.errorMessage(result));
          markInvalid(result);
          return;
        }
        render(result.body);
        if (focusResults) resultsTitle.focus();
      })
      .catch(function () {
        if (mine !== generation) return;
        showError(NETWORK_ERROR);
      });
  }

  /* The API names the parameter it refused; mark the control that sets it. */
  function markInvalid(result) {
    var fields = (result.body && result.body.error && result.body.error.fields) || {};
    var controls = { source: sourceSelect, event: eventSelect, sort: sortSelect, page_size: sizeSelect };
    Object.keys(controls).forEach(function (name) {
      if (fields[name]) controls[name].setAttribute("aria-invalid", "true");
      else controls[name].removeAttribute("aria-invalid");
    });
    if (fields.min_compatibility) {
      fieldError(minInput, minError, "Enter a percentage from 0 to 100, or leave it empty.");
    }
  }

  function render(body) {
    markInvalid({});
    var results = body.results;
    view.nextCursor = body.next_cursor || null;
    list.textContent = "";
    items = {};
    deadlines = {};
    results.forEach(function (item) {
      renderCard(item);
    });
    var first = view.stack.length === 1;
    if (!results.length) {
      var narrowed = filtered(view.params) || !first;
      $("matches-empty-title").textContent = narrowed ? "No matches fit these filters" : "No matches yet";
      MP.show($("matches-empty-text"), !narrowed);
      MP.show($("matches-empty-filtered"), narrowed);
      MP.show($("matches-empty-reset"), narrowed);
      summary.textContent = narrowed ? "No matches fit these filters." : "You have no matches yet.";
      setState("empty");
      MP.show(pager, !first);
    } else {
      summary.textContent =
        pageLabel() + " · " + results.length + (results.length === 1 ? " match" : " matches") + " shown";
      setState("ready");
      MP.show(pager, !first || Boolean(view.nextCursor));
    }
    prevButton.disabled = first;
    nextButton.disabled = !view.nextCursor;
    pageNumber.textContent = pageLabel();
  }

  // --- events --------------------------------------------------------------------------
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    applyControls();
  });
  form.addEventListener("change", function (event) {
    if (event.target === minInput) return; // applied on its own change below, or Apply
    applyControls();
  });
  minInput.addEventListener("change", applyControls);
  $("filter-reset").addEventListener("click", resetFilters);
  $("matches-error-reset").addEventListener("click", resetFilters);
  $("matches-empty-reset").addEventListener("click", resetFilters);
  $("matches-retry").addEventListener("click", function () {
    load();
  });
  firstPageButton.addEventListener("click", function () {
    view.stack = [null];
    view.known = true;
    writeLocation(true);
    load();
  });

  nextButton.addEventListener("click", function () {
    if (!view.nextCursor) return;
    view.stack.push(view.nextCursor);
    writeLocation(true);
    load({ focus: true });
  });
  prevButton.addEventListener("click", function () {
    if (view.stack.length < 2) return;
    view.stack.pop();
    if (view.stack.length === 1) view.known = true;
    writeLocation(true);
    load({ focus: true });
  });

  window.addEventListener("popstate", function () {
    var fromUrl = readLocation();
    var same =
      queryString(fromUrl.params, fromUrl.stack[fromUrl.stack.length - 1]) === queryString(view.params, current());
    if (same && !window.history.state) return; // a jump to #main (the skip link), not a page change
    view.params = fromUrl.params;
    view.stack = fromUrl.stack;
    view.known = fromUrl.known;
    controlsFromParams(view.params);
    load();
  });

  var start = readLocation();
  view.params = start.params;
  view.stack = start.stack;
  view.known = start.known;
  controlsFromParams(view.params);
  writeLocation(false);
  load();
  window.setInterval(tick, TICK_MS);
})();
