/* A conversation between two matched members: the thread, polled, and a form to write.
 *
 *   GET  /api/conversations/<id>/messages?after=<last id> -> {closed, messages: [...]}
 *   POST /api/conversations/<id>/messages {body}          -> 201 {id, body, at}
 */
(function () {
  "use strict";

  var root = document.getElementById("conversation-app");
  if (!root || !window.MP) return;
  var MP = window.MP;
  var $ = function (testid, scope) {
    return MP.byTestId(testid, scope || root);
  };

  var POLL_MS = 2000;
  var MAX_BACKOFF_MS = 15000;

  var url = root.getAttribute("data-messages-url");
  var list = $("messages");
  var empty = $("messages-empty");
  var loading = $("messages-loading");
  var closedNote = $("conversation-closed");
  var form = $("message-form");
  var fieldset = form.querySelector("fieldset");
  var textarea = $("message-body");
  var sendButton = $("message-send");
  var formError = $("message-error");
  var statusPill = MP.byTestId("match-status");

  var lastId = 0;
  var closed = root.getAttribute("data-closed") === "true";
  var pollTimer = null;
  var polling = false;
  var failures = 0;
  var sending = false;

  var timeFormat = null;
  try {
    timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  } catch (e) {
    timeFormat = null;
  }

  function formatTime(date) {
    var sameDay = date.toDateString() === new Date().toDateString();
    if (!sameDay) return MP.formatDateTime(date);
    return timeFormat ? timeFormat.format(date) : date.toLocaleTimeString();
  }

  function setError(message) {
    formError.textContent = message || "";
    MP.show(formError, Boolean(message));
    if (message) textarea.setAttribute("aria-invalid", "true");
    else textarea.removeAttribute("aria-invalid");
  }

  function setClosed(value) {
    closed = value;
    fieldset.disabled = value;
    MP.show(closedNote, value);
    form.setAttribute("data-closed", value ? "true" : "false");
    if (value && statusPill) {
      statusPill.textContent = "Closed";
      statusPill.classList.add("status-pill--rejected");
    }
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function append(messages) {
    if (!messages.length) return;
    var stick = nearBottom() || lastId === 0;
    messages.forEach(function (message) {
      if (message.id <= lastId) return;
      lastId = message.id;
      var li = MP.el("li", "message" + (message.mine ? " message--mine" : ""));
      li.setAttribute("data-testid", "message");
      li.setAttribute("data-message-id", String(message.id));
      var meta = MP.el("p", "message__meta");
      meta.appendChild(MP.el("span", "message__from", message.mine ? "You" : message.from));
      var at = new Date(message.at);
      var time = MP.el("time", "message__time", formatTime(at));
      time.setAttribute("datetime", message.at);
      time.setAttribute("title", MP.formatDateTime(at));
      meta.appendChild(time);
      li.appendChild(meta);
      var body = MP.el("p", "message__body", message.body);
      body.setAttribute("data-testid", "message-text");
      li.appendChild(body);
      list.appendChild(li);
    });
    MP.show(empty, false);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function schedule(delay) {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay);
  }

  function poll() {
    if (polling) return;
    polling = true;
    pollTimer = null;
    MP.api("GET", url + "?after=" + encodeURIComponent(String(lastId)))
      .then(function (result) {
        polling = false;
        MP.show(loading, false);
        if (!result.ok) {
          if (result.status === 404 || MP.errorCode(result) === "not_authenticated") {
            setError(MP.errorMessage(result));
            setClosed(true);
            return; // nothing more to fetch
          }
          failures += 1;
          schedule(Math.min(POLL_MS * Math.pow(2, failures), MAX_BACKOFF_MS));
          return;
        }
        failures = 0;
        append((result.body && result.body.messages) || []);
        MP.show(empty, lastId === 0);
        if (result.body && result.body.closed && !closed) setClosed(true);
        // A full page means more may be waiting: fetch the rest at once.
        var full = result.body && result.body.messages && result.body.messages.length >= 100;
        schedule(full ? 0 : POLL_MS);
      })
      .catch(function () {
        polling = false;
        failures += 1;
        schedule(Math.min(POLL_MS * Math.pow(2, failures), MAX_BACKOFF_MS));
      });
  }

  function send() {
    if (sending || closed) return;
    var body = textarea.value.trim();
    if (!body) {
      setError("Write a message first.");
      textarea.focus();
      return;
    }
    sending = true;
    sendButton.disabled = true;
    setError("");
    MP.api("POST", url, { body: body })
      .then(function (result) {
        if (result.ok) {
          textarea.value = "";
          if (!polling) schedule(0);
          return;
        }
        if (MP.errorCode(result) === "conversation_closed") setClosed(true);
        setError(MP.errorMessage(result));
      })
      .catch(function () {
        setError("Your message was not sent: could not reach the server. Try again.");
      })
      .then(function () {
        sending = false;
        sendButton.disabled = false;
        if (!closed) textarea.focus();
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    send();
  });

  textarea.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });

  setClosed(closed);
  poll();
})();
