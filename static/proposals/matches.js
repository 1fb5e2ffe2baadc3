/* The matches page: my matches, accept or reject, a way into each conversation.
 *
 *   GET  /api/matches                    -> {matches: [...]}
 *   POST /api/matches/<id>/decision      {decision: "accept"|"reject"} -> the match
 */
(function () {
  "use strict";

  var root = document.getElementById("matches-app");
  if (!root || !window.MP) return;
  var MP = window.MP;
  var $ = function (testid, scope) {
    return MP.byTestId(testid, scope || root);
  };

  var matchesUrl = root.getAttribute("data-matches-url");
  var decideUrl = root.getAttribute("data-decide-url");
  var conversationUrl = root.getAttribute("data-conversation-url");
  var list = $("match-list");
  var loading = $("matches-loading");
  var empty = $("matches-empty");
  var pageError = $("matches-error");

  var STATUS_LABELS = { pending: "Pending", accepted: "Accepted", rejected: "Turned down", expired: "Expired" };
  var DECISION_LABELS = { accept: "Accepted", reject: "Turned down" };

  function fact(label, value, testid) {
    var wrap = MP.el("div", "fact");
    wrap.appendChild(MP.el("dt", null, label));
    var dd = MP.el("dd", null, value);
    if (testid) dd.setAttribute("data-testid", testid);
    wrap.appendChild(dd);
    return wrap;
  }

  function renderRow(match, existing) {
    var other = match.with || { display_name: "A member", privacy: "private" };
    var li = MP.el("li", "match member-match");
    li.setAttribute("data-testid", "match-row");
    li.setAttribute("data-match-id", match.match_id);
    li.setAttribute("data-status", match.status);

    var avatar = MP.el("span", "avatar avatar--lg", MP.initials(other.display_name));
    avatar.setAttribute("aria-hidden", "true");
    li.appendChild(avatar);

    var body = MP.el("div", "match__body");
    var head = MP.el("div", "match__head");
    var name = MP.el("h2", "match__name", other.display_name || "A member");
    name.setAttribute("data-testid", "match-name");
    head.appendChild(name);
    var status = MP.el("span", "status-pill status-pill--" + match.status, STATUS_LABELS[match.status] || match.status);
    status.setAttribute("data-testid", "match-status");
    head.appendChild(status);
    body.appendChild(head);

    var interests = other.privacy === "private" ? [] : other.interests || [];
    if (interests.length) {
      var chips = MP.el("ul", "chips member-match__chips");
      chips.setAttribute("aria-label", "Interests");
      interests.forEach(function (interest) {
        chips.appendChild(MP.el("li", "chip", interest));
      });
      body.appendChild(chips);
    } else if (other.privacy === "private") {
      body.appendChild(MP.el("p", "hint", "Private profile: only their name is shown."));
    }
    if (other.bio) body.appendChild(MP.el("p", "member-match__bio", other.bio));

    var facts = MP.el("dl", "facts");
    if (match.expires_at) {
      var expires = new Date(match.expires_at);
      var label = match.status === "pending" ? "Expires" : "Expiry";
      var expiry = fact(label, MP.formatRelative(expires), "match-expiry");
      expiry.querySelector("dd").setAttribute("title", MP.formatDateTime(expires));
      facts.appendChild(expiry);
    }
    facts.appendChild(fact("You", DECISION_LABELS[match.my_decision] || "Not answered", "match-my-decision"));
    facts.appendChild(fact("They", DECISION_LABELS[match.their_decision] || "Not answered", "match-their-decision"));
    body.appendChild(facts);

    var actions = MP.el("div", "member-match__actions");
    if (match.status === "pending" && !match.my_decision) {
      var accept = MP.el("button", "button", "Accept");
      accept.type = "button";
      accept.setAttribute("data-testid", "match-accept");
      accept.addEventListener("click", function () {
        decide(match, "accept", li);
      });
      var reject = MP.el("button", "button button--secondary", "Reject");
      reject.type = "button";
      reject.setAttribute("data-testid", "match-reject");
      reject.addEventListener("click", function () {
        decide(match, "reject", li);
      });
      actions.appendChild(accept);
      actions.appendChild(reject);
    }
    if (match.conversation_id) {
      var open = match.status === "pending" || match.status === "accepted";
      var link = MP.el("a", "button button--ghost", open ? "Open conversation" : "View conversation");
      link.href = conversationUrl.replace("__id__", encodeURIComponent(match.conversation_id));
      link.setAttribute("data-testid", "match-conversation");
      link.setAttribute("aria-label", (open ? "Open conversation with " : "View conversation with ") + name.textContent);
      actions.appendChild(link);
    }
    if (actions.childNodes.length) body.appendChild(actions);

    var error = MP.el("p", "form-error");
    error.setAttribute("role", "alert");
    error.setAttribute("data-testid", "match-error");
    error.hidden = true;
    body.appendChild(error);

    li.appendChild(body);
    if (existing) list.replaceChild(li, existing);
    else list.appendChild(li);
    return li;
  }

  function decide(match, decision, row) {
    var buttons = row.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    row.setAttribute("aria-busy", "true");
    var error = $("match-error", row);
    MP.show(error, false);
    MP.api("POST", decideUrl.replace("__id__", encodeURIComponent(match.match_id)), { decision: decision })
      .then(function (result) {
        if (result.ok && result.body) {
          var fresh = renderRow(result.body, row);
          var focusTarget = fresh.querySelector("a, button");
          if (focusTarget) focusTarget.focus();
          return;
        }
        row.removeAttribute("aria-busy");
        for (var j = 0; j < buttons.length; j++) buttons[j].disabled = false;
        error.textContent = MP.errorMessage(result);
        MP.show(error, true);
      })
      .catch(function () {
        row.removeAttribute("aria-busy");
        for (var j = 0; j < buttons.length; j++) buttons[j].disabled = false;
        error.textContent = "Could not reach the server. Check your connection and try again.";
        MP.show(error, true);
      });
  }

  function load() {
    MP.api("GET", matchesUrl)
      .then(function (result) {
        MP.show(loading, false);
        if (!result.ok) {
          pageError.textContent = MP.errorMessage(result);
          MP.show(pageError, true);
          return;
        }
        var matches = (result.body && result.body.matches) || [];
        list.textContent = "";
        matches.forEach(function (match) {
          renderRow(match);
        });
        MP.show(list, matches.length > 0);
        MP.show(empty, matches.length === 0);
      })
      .catch(function () {
        MP.show(loading, false);
        pageError.textContent = "Could not reach the server. Check your connection and reload the page.";
        MP.show(pageError, true);
      });
  }

  load();
})();
