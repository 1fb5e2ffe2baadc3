/* The run page: submit a URL, follow the run until it is ready, show the ranked investors.
 *
 * Plain JS, no build step. Talks only to the JSON API:
 *   POST /api/match/run                  -> {run_id, status, canonical_url, created}
 *   GET  /api/match/run/<run_id>         -> the run, polled until ready or error
 *   GET  /api/match/run/<run_id>/matches -> {matches: [...]}, once ready
 * Errors come in one shape: {"error": {"code", "message", "fields"}}.
 */
(function () {
  "use strict";

  var POLL_MS = 400;
  var TICK_MS = 100;
  var STEPS = ["queued", "processing", "done"];
  var STATE_LABELS = { created: "Queued", queued: "Queued", processing: "Processing", ready: "Ready", error: "Error" };

  var form = document.getElementById("run-form");
  if (!form) return; // the engine is off for this visitor: there is nothing to drive

  var $ = function (testid, root) {
    return (root || document).querySelector('[data-testid="' + testid + '"]');
  };
  var input = document.getElementById("run-url");
  var button = $("run-submit");
  var formError = $("form-error");
  var runPanel = document.getElementById("run");
  var runState = $("run-state");
  var runElapsed = $("run-elapsed");
  var runAttempt = $("run-attempt");
  var runError = $("run-error");
  var runNotice = $("run-notice");
  var runCanonical = $("run-url-canonical");
  var runUsed = $("run-url-used");
  var stepper = $("run-stepper");
  var startupBox = $("startup");
  var matchesPanel = document.getElementById("matches");
  var matchList = $("match-list");
  var matchesTitle = $("matches-title");
  var matchesEmpty = $("matches-empty");
  var submitUrl = form.getAttribute("data-submit-url");

  // Every submission gets a new generation; callbacks from an older one are ignored, so a
  // second submit never mixes its state with the first run's late responses.
  var generation = 0;
  var pollTimer = null;
  var tickTimer = null;
  // The elapsed counter ticks locally between polls from the last value the API gave.
  var clock = { baseMs: 0, at: 0, running: false };

  // A founder types "acme.com" far more often than "https://acme.com": without a scheme the
  // page assumes https:// and says so. Anything that names a scheme ("ftp://", "mailto:") is
  // sent as typed, so the API's own message explains what it accepts; "acme.com:8080" has a
  // port, not a scheme. The API itself takes only full http(s) URLs, as its schema says.
  var SCHEME = /^[a-z][a-z0-9+.-]*:(?!\d)/i;

  function urlWithScheme(typed) {
    if (SCHEME.test(typed)) return { url: typed, assumed: false };
    return { url: "https://" + typed.replace(/^\/\//, ""), assumed: true };
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function show(el, visible) {
    el.hidden = !visible;
  }

  function setFormError(message) {
    formError.textContent = message || "";
    show(formError, Boolean(message));
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function readJson(response) {
    return response.text().then(function (text) {
      if (!text) return null;
      try {
        return JSON.parse(text);
      } catch (e) {
        return null;
      }
    });
  }

  function errorMessage(body, status) {
    if (body && body.error && body.error.message) return body.error.message;
    return "Something went wrong (HTTP " + status + "). Please try again.";
  }

  // --- the elapsed counter ------------------------------------------------------------
  function formatSeconds(ms) {
    return (Math.max(ms, 0) / 1000).toFixed(1) + " s";
  }

  function renderElapsed() {
    var ms = clock.baseMs + (clock.running ? performance.now() - clock.at : 0);
    runElapsed.textContent = formatSeconds(ms);
  }

  function clockSet(ms, running) {
    clock.baseMs = ms;
    clock.at = performance.now();
    clock.running = running;
    renderElapsed();
    if (running && !tickTimer) tickTimer = setInterval(renderElapsed, TICK_MS);
    if (!running && tickTimer) {
      clearInterval(tickTimer);
      tickTimer = null;
    }
  }

  // --- the stepper --------------------------------------------------------------------
  function renderStepper(status) {
    var current = status === "processing" ? 1 : status === "ready" || status === "error" ? 2 : 0;
    var items = stepper.querySelectorAll(".step");
    for (var i = 0; i < items.length; i++) {
      var item = items[i];
      var state;
      if (status === "ready") state = "done";
      else if (i < current) state = "done";
      else if (i === current) state = status === "error" ? "error" : "current";
      else state = "todo";
      item.setAttribute("data-state", state);
      if (i === current) item.setAttribute("aria-current", "step");
      else item.removeAttribute("aria-current");
    }
    var last = items[STEPS.length - 1];
    last.querySelector(".step__label").textContent = status === "error" ? "Error" : "Ready";
    last.querySelector(".step__note").textContent =
      status === "error" ? "The run could not finish" : "Your ranked investors";
    stepper.setAttribute("data-status", status);
  }

  function renderRun(run) {
    var status = run.status;
    runState.textContent = STATE_LABELS[status] || status;
    runPanel.setAttribute("data-status", status);
    runCanonical.textContent = run.canonical_url || "";
    renderStepper(status);

    var attempts = run.attempts || 0;
    runAttempt.textContent = "attempt " + attempts;
    show(runAttempt, attempts > 1);

    if (run.startup) {
      $("startup-name", startupBox).textContent = run.startup.name || run.canonical_url;
      var description = $("startup-description", startupBox);
      description.textContent = run.startup.description || "";
      show(description, Boolean(run.startup.description));
      renderChips($("startup-sectors", startupBox), run.startup.sectors || []);
      show(startupBox, true);
    }

    if (status === "error") {
      runError.textContent = run.error || "The run failed.";
      show(runError, true);
    } else {
      show(runError, false);
      // A retry keeps the last error: say so quietly while the run is being tried again.
      if (run.error && status !== "ready") notice("The last attempt failed (" + run.error + "); trying again.");
      else notice("");
    }

    var terminal = status === "ready" || status === "error";
    clockSet(typeof run.elapsed_ms === "number" ? run.elapsed_ms : clock.baseMs, !terminal);
  }

  function notice(message) {
    runNotice.textContent = message || "";
    show(runNotice, Boolean(message));
  }

  // --- matches ------------------------------------------------------------------------
  var money = null;
  try {
    money = new Intl.NumberFormat("en-US", {
      style: "currency",
      currency: "USD",
      notation: "compact",
      maximumFractionDigits: 1,
    });
  } catch (e) {
    money = null;
  }

  function formatMoney(amount) {
    if (typeof amount !== "number") return "?";
    if (money) return money.format(amount);
    return "$" + amount.toLocaleString("en-US");
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function renderChips(list, values, className) {
    list.textContent = "";
    values.forEach(function (value) {
      list.appendChild(el("li", "chip" + (className ? " " + className : ""), value));
    });
    show(list, values.length > 0);
  }

  function renderMatches(matches) {
    matchList.textContent = "";
    matches.forEach(function (match) {
      var inv = match.investor || {};
      var pct = Math.round(Math.max(0, Math.min(1, match.score || 0)) * 100);

      var li = el("li", "match");
      li.setAttribute("data-testid", "match-row");
      li.setAttribute("data-rank", String(match.rank));

      var rank = el("div", "match__rank");
      rank.setAttribute("data-testid", "match-rank");
      rank.setAttribute("aria-label", "Rank " + match.rank);
      rank.textContent = String(match.rank);
      li.appendChild(rank);

      var body = el("div", "match__body");
      var head = el("div", "match__head");
      var name = el("h3", "match__name", inv.name || "Investor");
      name.setAttribute("data-testid", "match-name");
      head.appendChild(name);

      var score = el("div", "match__score");
      var pctText = el("span", "match__pct", pct + "%");
      pctText.setAttribute("data-testid", "match-score");
      var bar = el("span", "bar");
      bar.setAttribute("role", "img");
      bar.setAttribute("aria-label", "Fit score " + pct + " percent");
      var fill = el("span", "bar__fill");
      fill.style.width = pct + "%";
      bar.appendChild(fill);
      score.appendChild(bar);
      score.appendChild(pctText);
      head.appendChild(score);
      body.appendChild(head);

      var facts = el("dl", "facts");
      function fact(label, valueNode, testid) {
        var wrap = el("div", "fact");
        wrap.appendChild(el("dt", null, label));
        var dd = el("dd");
        if (testid) dd.setAttribute("data-testid", testid);
        dd.appendChild(valueNode);
        wrap.appendChild(dd);
        facts.appendChild(wrap);
      }
      var sectors = el("ul", "chips");
      renderChips(sectors, inv.sectors || []);
      sectors.hidden = false;
      if (!(inv.sectors || []).length) sectors.appendChild(el("li", "chip chip--muted", "any"));
      fact("Sectors", sectors, "match-sectors");
      var stages = el("ul", "chips");
      renderChips(stages, inv.stages || [], "chip--stage");
      stages.hidden = false;
      if (!(inv.stages || []).length) stages.appendChild(el("li", "chip chip--muted", "any"));
      fact("Stages", stages, "match-stages");
      fact("Checks", el("span", "check", formatMoney(inv.check_min) + " – " + formatMoney(inv.check_max)), "match-checks");
      body.appendChild(facts);

      var reasons = match.reasons || [];
      if (reasons.length) {
        var why = el("div", "why");
        why.appendChild(el("p", "why__title", "Why this investor"));
        var ul = el("ul", "reasons");
        ul.setAttribute("data-testid", "match-reasons");
        reasons.forEach(function (reason) {
          ul.appendChild(el("li", null, reason));
        });
        why.appendChild(ul);
        body.appendChild(why);
      }
      li.appendChild(body);
      matchList.appendChild(li);
    });
    var n = matches.length;
    matchesTitle.textContent =
      n === 1 ? "1 investor, best fit first" : n + " investors, best fit first";
    show(matchesEmpty, n === 0);
    show(matchList, n > 0);
    show(matchesPanel, true);
  }

  function loadMatches(runId, gen) {
    fetch(submitUrl + "/" + encodeURIComponent(runId) + "/matches", {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        return readJson(response).then(function (body) {
          if (gen !== generation) return;
          if (!response.ok) {
            notice("Could not load the matches: " + errorMessage(body, response.status));
            return;
          }
          renderMatches((body && body.matches) || []);
        });
      })
      .catch(function () {
        if (gen !== generation) return;
        notice("Could not load the matches: the network request failed. Reload the page to try again.");
      });
  }

  // --- polling ------------------------------------------------------------------------
  function stopPolling() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function poll(runId, gen, failures) {
    fetch(submitUrl + "/" + encodeURIComponent(runId), {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
    })
      .then(function (response) {
        return readJson(response).then(function (body) {
          if (gen !== generation) return;
          if (!response.ok) {
            if (response.status >= 500 || response.status === 429) return retry(runId, gen, failures + 1);
            clockSet(clock.baseMs, false);
            notice("");
            runError.textContent = errorMessage(body, response.status);
            show(runError, true);
            return;
          }
          renderRun(body);
          if (body.status === "ready") loadMatches(runId, gen);
          else if (body.status !== "error") schedule(runId, gen, 0, POLL_MS);
        });
      })
      .catch(function () {
        if (gen !== generation) return;
        retry(runId, gen, failures + 1);
      });
  }

  function retry(runId, gen, failures) {
    notice("Lost contact with the server; retrying…");
    // Back off on repeated failures, but never wait long: the run keeps going without us.
    schedule(runId, gen, failures, Math.min(POLL_MS * Math.pow(2, failures), 5000));
  }

  function schedule(runId, gen, failures, delay) {
    stopPolling();
    pollTimer = setTimeout(function () {
      poll(runId, gen, failures);
    }, delay);
  }

  function startRun(submission, sent) {
    generation += 1;
    var gen = generation;
    stopPolling();
    show(matchesPanel, false);
    matchList.textContent = "";
    show(startupBox, false);
    show(runError, false);
    notice("");
    renderRun({
      status: submission.status,
      canonical_url: submission.canonical_url,
      attempts: 0,
      elapsed_ms: 0,
      startup: null,
      error: null,
    });
    runUsed.textContent = sent.assumed ? "No scheme given, so we used " + sent.url + "." : "";
    show(runUsed, sent.assumed);
    show(runPanel, true);
    poll(submission.run_id, gen, 0);
  }

  // --- submit -------------------------------------------------------------------------
  function setBusy(busy) {
    button.disabled = busy;
    button.textContent = busy ? "Starting…" : "Find investors";
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var typed = input.value.trim();
    setFormError("");
    if (!typed) {
      setFormError("Enter your startup's website, like your-startup.com.");
      input.focus();
      return;
    }
    var sent = urlWithScheme(typed);
    setBusy(true);
    fetch(submitUrl, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
      },
      credentials: "same-origin",
      body: JSON.stringify({ url: sent.url }),
    })
      .then(function (response) {
        return readJson(response).then(function (body) {
          if (response.status === 429) {
            var wait = parseInt(response.headers.get("Retry-After") || "", 10);
            setFormError(
              "You are sending requests too quickly. Please slow down and try again" +
                (wait > 0 ? " in " + wait + " second" + (wait === 1 ? "" : "s") + "." : " in a moment.")
            );
            input.focus();
            return;
          }
          if (!response.ok || !body || !body.run_id) {
            var message = errorMessage(body, response.status);
            setFormError(sent.assumed && response.status === 400 ? message + " (We tried " + sent.url + ".)" : message);
            input.focus();
            return;
          }
          startRun(body, sent);
        });
      })
      .catch(function () {
        setFormError("Could not reach the server. Check your connection and try again.");
      })
      .then(function () {
        setBusy(false);
      });
  });
})();
