/* The vote page: one proposal at a time, Yes / No, then straight to the next.
 *
 *   GET  /api/proposals/next          -> {proposal: {...}} or {proposal: null, reason}
 *   POST /api/proposals/<id>/vote     {choice: "yes"|"no"} -> 201 (200 if it repeats a vote)
 */
(function () {
  "use strict";

  var root = document.getElementById("vote-app");
  if (!root || !window.MP) return;
  var MP = window.MP;
  var $ = function (testid, scope) {
    return MP.byTestId(testid, scope || root);
  };

  var nextUrl = root.getAttribute("data-next-url");
  var voteUrl = root.getAttribute("data-vote-url");
  var storageKey = "mp:votes-cast:" + root.getAttribute("data-user");

  var card = $("proposal-card");
  var loading = $("proposal-loading");
  var none = $("no-proposals");
  var notice = $("vote-notice");
  var errorBox = $("vote-error-box");
  var errorText = $("vote-error");
  var announce = $("vote-announce");
  var counter = MP.byTestId("votes-cast");
  var timeLeft = $("time-left", card);
  var compatValue = $("compatibility", card);
  var compatBar = $("compatibility-bar", card);
  var sharedNote = $("shared-interests", card);
  var buttons = card.querySelectorAll("[data-choice]");
  var people = card.querySelectorAll('[data-testid="member"]');

  var current = null; // the proposal on screen
  var busy = false;
  var generation = 0; // responses from an older load are ignored
  var countdown = { endsAt: 0, timer: null };
  var retryTimer = null;

  // --- the session's tally ------------------------------------------------------------
  function tallyRead() {
    try {
      return parseInt(window.sessionStorage.getItem(storageKey) || "0", 10) || 0;
    } catch (e) {
      return 0;
    }
  }
  var tally = tallyRead();

  function tallyAdd() {
    tally += 1;
    try {
      window.sessionStorage.setItem(storageKey, String(tally));
    } catch (e) {
      /* private mode: the tally lives as long as the page */
    }
    counter.textContent = String(tally);
  }
  counter.textContent = String(tally);

  // --- view states --------------------------------------------------------------------
  function setNotice(message) {
    notice.textContent = message || "";
    MP.show(notice, Boolean(message));
  }

  function setError(message) {
    errorText.textContent = message || "";
    MP.show(errorBox, Boolean(message));
  }

  function setBusy(value) {
    busy = value;
    card.setAttribute("aria-busy", value ? "true" : "false");
    card.classList.toggle("is-busy", value);
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = value || !current;
  }

  function showOnly(which) {
    MP.show(loading, which === "loading");
    MP.show(card, which === "card");
    MP.show(none, which === "none");
  }

  // --- rendering ----------------------------------------------------------------------
  function sharedInterests(members) {
    var a = members[0] && members[0].privacy !== "private" ? members[0].interests || [] : [];
    var b = members[1] && members[1].privacy !== "private" ? members[1].interests || [] : [];
    return a.filter(function (interest) {
      return b.indexOf(interest) !== -1;
    });
  }

  function renderPerson(node, member, shared) {
    member = member || { display_name: "A member", privacy: "private" };
    var name = member.display_name || "A member";
    $("member-name", node).textContent = name;
    node.querySelector(".avatar").textContent = MP.initials(name);
    var isPrivate = member.privacy === "private";
    node.classList.toggle("person--private", isPrivate);
    MP.show($("member-private", node), isPrivate);

    var chips = $("member-interests", node);
    chips.textContent = "";
    var interests = isPrivate ? [] : member.interests || [];
    interests.forEach(function (interest) {
      var chip = MP.el("li", "chip", interest);
      if (shared.indexOf(interest) !== -1) {
        chip.classList.add("chip--shared");
        chip.title = "Both are interested in " + interest;
      }
      chips.appendChild(chip);
    });
    MP.show(chips, interests.length > 0);

    var bio = $("member-bio", node);
    if (isPrivate) {
      bio.textContent = "This member keeps their profile private; only their name is shown.";
      bio.classList.add("person__bio--muted");
    } else if (member.bio) {
      bio.textContent = member.bio;
      bio.classList.remove("person__bio--muted");
    } else {
      bio.textContent = "No bio yet.";
      bio.classList.add("person__bio--muted");
    }
  }

  function render(proposal) {
    current = proposal;
    card.setAttribute("data-proposal-id", proposal.proposal_id);
    var pct = Math.round(Math.max(0, Math.min(1, Number(proposal.compatibility) || 0)) * 100);
    compatValue.textContent = pct + "%";
    compatBar.setAttribute("aria-label", "Compatibility " + pct + " percent");
    compatBar.querySelector(".bar__fill").style.width = pct + "%";
    var members = proposal.members || [];
    var shared = sharedInterests(members);
    for (var i = 0; i < people.length; i++) renderPerson(people[i], members[i], shared);
    sharedNote.textContent =
      shared.length === 1 ? "1 shared interest" : shared.length + " shared interests";
    MP.show(sharedNote, shared.length > 0);
    countdownStart(proposal.seconds_left);
    showOnly("card");
    setBusy(false);
  }

  // --- the countdown ------------------------------------------------------------------
  function countdownStop() {
    if (countdown.timer) clearInterval(countdown.timer);
    countdown.timer = null;
  }

  function countdownRender() {
    var left = (countdown.endsAt - performance.now()) / 1000;
    if (left <= 0) {
      countdownStop();
      timeLeft.textContent = "Closed";
      card.classList.add("is-closed");
      if (current && !busy) {
        current = null;
        setBusy(true);
        setNotice("Time ran out on that proposal. Here is the next one.");
        load();
      }
      return;
    }
    timeLeft.textContent = MP.formatCountdown(Math.ceil(left));
  }

  function countdownStart(secondsLeft) {
    countdownStop();
    card.classList.remove("is-closed");
    if (typeof secondsLeft !== "number") {
      timeLeft.textContent = "—";
      return;
    }
    countdown.endsAt = performance.now() + secondsLeft * 1000;
    countdownRender();
    countdown.timer = setInterval(countdownRender, 1000);
  }

  // --- loading the next proposal ------------------------------------------------------
  function load() {
    generation += 1;
    var gen = generation;
    if (retryTimer) clearTimeout(retryTimer);
    setError("");
    if (!current) {
      countdownStop();
      if (card.hidden) showOnly("loading");
    }
    MP.api("GET", nextUrl)
      .then(function (result) {
        if (gen !== generation) return;
        if (!result.ok) {
          failed(MP.errorMessage(result));
          return;
        }
        var proposal = result.body && result.body.proposal;
        if (!proposal) {
          current = null;
          countdownStop();
          showOnly("none");
          setBusy(false);
          announce.textContent = "No proposals right now.";
          return;
        }
        render(proposal);
      })
      .catch(function () {
        if (gen !== generation) return;
        failed("Could not reach the server. Check your connection and try again.");
      });
  }

  function failed(message) {
    current = null;
    countdownStop();
    showOnly("");
    setBusy(false);
    setError(message);
  }

  // --- voting -------------------------------------------------------------------------
  function vote(choice) {
    if (busy || !current) return;
    var proposal = current;
    setBusy(true);
    setNotice("");
    setError("");
    MP.api("POST", voteUrl.replace("__id__", encodeURIComponent(proposal.proposal_id)), { choice: choice })
      .then(function (result) {
        if (result.ok) {
          if (result.status === 201) tallyAdd();
          announce.textContent = "Voted " + choice + ". Loading the next proposal.";
          current = null;
          load();
          return;
        }
        var code = MP.errorCode(result);
        if (code === "proposal_closed" || code === "already_voted" || code === "proposal_not_found" || code === "not_a_voter") {
          // Someone else's vote or the deadline got there first: nothing for this voter to fix.
          setNotice(
            code === "already_voted"
              ? "You had already voted on that proposal. Here is the next one."
              : "Voting on that proposal closed before your vote arrived. Here is the next one."
          );
          current = null;
          load();
          return;
        }
        setBusy(false);
        setError(MP.errorMessage(result));
      })
      .catch(function () {
        setBusy(false);
        setError("Your vote did not reach the server. Check your connection and try again.");
      });
  }

  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function (event) {
      vote(event.currentTarget.getAttribute("data-choice"));
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    var key = (event.key || "").toLowerCase();
    if ((key === "y" || key === "n") && !card.hidden) {
      event.preventDefault();
      vote(key === "y" ? "yes" : "no");
    }
  });

  $("retry").addEventListener("click", function () {
    showOnly("loading");
    load();
  });
  $("vote-error-retry").addEventListener("click", function () {
    setError("");
    showOnly("loading");
    load();
  });

  load();
})();
