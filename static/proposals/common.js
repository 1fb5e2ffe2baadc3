/* Shared helpers for the member pages. Plain JS, no build step.
 * Errors from the API come in one shape: {"error": {"code", "message", "fields"}}. */
(function () {
  "use strict";

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
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

  /* fetch + JSON in and out; resolves to {ok, status, body}, rejects only on network failure. */
  function api(method, url, payload) {
    var headers = { Accept: "application/json" };
    var init = { method: method, headers: headers, credentials: "same-origin", cache: "no-store" };
    if (method !== "GET") {
      headers["X-CSRFToken"] = csrfToken();
      if (payload !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(payload);
      }
    }
    return fetch(url, init).then(function (response) {
      return readJson(response).then(function (body) {
        return { ok: response.ok, status: response.status, body: body };
      });
    });
  }

  function errorCode(result) {
    return result && result.body && result.body.error ? result.body.error.code : "";
  }

  function errorMessage(result) {
    // Not signed in: 401 from the API (it names its token scheme); 403 where a view names none.
    if ((result.status === 401 || result.status === 403) && errorCode(result) === "not_authenticated") {
      return "Your session has ended. Sign in again to continue.";
    }
    if (result.body && result.body.error && result.body.error.message) return result.body.error.message;
    if (result.status === 429) return "Too many requests. Please wait a moment and try again.";
    return "Something went wrong (HTTP " + result.status + "). Please try again.";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function byTestId(testid, root) {
    return (root || document).querySelector('[data-testid="' + testid + '"]');
  }

  function initials(name) {
    var parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
    if (!parts.length) return "?";
    var first = parts[0].charAt(0);
    var last = parts.length > 1 ? parts[parts.length - 1].charAt(0) : "";
    return (first + last).toUpperCase();
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  /* 3725 -> "1:02:05", 125 -> "2:05", 2 days and more -> "2 d 4 h" */
  function formatCountdown(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var days = Math.floor(s / 86400);
    var hours = Math.floor((s % 86400) / 3600);
    var minutes = Math.floor((s % 3600) / 60);
    var secs = s % 60;
    if (days >= 1) return days + " d " + hours + " h";
    if (hours >= 1) return hours + ":" + pad(minutes) + ":" + pad(secs);
    return minutes + ":" + pad(secs);
  }

  /* "in 6 days", "in 3 hours", "in 12 minutes" (or "… ago" for the past) */
  function formatRelative(date) {
    var diff = (date.getTime() - Date.now()) / 1000;
    var abs = Math.abs(diff);
    var unit, value;
    if (abs >= 2 * 86400) {
      unit = "day";
      value = Math.round(abs / 86400);
    } else if (abs >= 2 * 3600) {
      unit = "hour";
      value = Math.round(abs / 3600);
    } else if (abs >= 60) {
      unit = "minute";
      value = Math.round(abs / 60);
    } else {
      return diff >= 0 ? "in under a minute" : "just now";
    }
    var text = value + " " + unit + (value === 1 ? "" : "s");
    return diff >= 0 ? "in " + text : text + " ago";
  }

  function formatDateTime(date) {
    try {
      return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    } catch (e) {
      return date.toString();
    }
  }

  window.MP = {
    api: api,
    byTestId: byTestId,
    csrfToken: csrfToken,
    el: el,
    errorCode: errorCode,
    errorMessage: errorMessage,
    formatCountdown: formatCountdown,
    formatDateTime: formatDateTime,
    formatRelative: formatRelative,
    initials: initials,
    show: show,
  };
})();
