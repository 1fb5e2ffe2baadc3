/* "Sign in with Ethereum" (EIP-4361), as an enhancement of the sign-in page.
 *
 * Only when the browser has a wallet (window.ethereum): ask it for an account and its chain,
 *   POST /api/auth/nonce -> 201 {nonce, expires_at}
 * build the EIP-4361 message for this site, have the wallet sign it (personal_sign), then
 *   POST /api/auth/siwe {message, signature} -> 200 {user_id, wallet_address, display_name}
 * and continue to the page the member came for. Without a wallet the button stays disabled.
 */
(function () {
  "use strict";

  var root = document.getElementById("siwe");
  if (!root || !window.MP) return;
  var MP = window.MP;
  var button = MP.byTestId("siwe-button", root);
  var note = MP.byTestId("siwe-note", root);
  var errorBox = MP.byTestId("siwe-error", root);
  var nonceUrl = root.getAttribute("data-nonce-url");
  var siweUrl = root.getAttribute("data-siwe-url");
  var nextUrl = root.getAttribute("data-next") || "/";
  var LABEL = button.innerHTML;

  // --- Keccak-256, for the EIP-55 checksum the message's address must carry ----------
  var MASK = (1n << 64n) - 1n;
  var ROUND_CONSTANTS = (function () {
    var out = [];
    var r = 1; // the LFSR of FIPS 202, x^8 + x^6 + x^5 + x^4 + 1
    function bit() {
      var value = r & 1;
      r = r & 0x80 ? ((r << 1) ^ 0x71) & 0xff : (r << 1) & 0xff;
      return value;
    }
    for (var round = 0; round < 24; round++) {
      var rc = 0n;
      for (var j = 0; j < 7; j++) if (bit()) rc |= 1n << BigInt((1 << j) - 1);
      out.push(rc);
    }
    return out;
  })();
  var ROTATIONS = (function () {
    var rot = new Array(25).fill(0);
    var x = 1;
    var y = 0;
    for (var t = 0; t < 24; t++) {
      rot[x + 5 * y] = (((t + 1) * (t + 2)) / 2) % 64;
      var nx = y;
      y = (2 * x + 3 * y) % 5;
      x = nx;
    }
    return rot;
  })();

  function rotl(v, n) {
    n = BigInt(n);
    return n === 0n ? v : ((v << n) | (v >> (64n - n))) & MASK;
  }

  function keccakF(s) {
    var c = new Array(5);
    var b = new Array(25);
    for (var round = 0; round < 24; round++) {
      var x, y;
      for (x = 0; x < 5; x++) c[x] = s[x] ^ s[x + 5] ^ s[x + 10] ^ s[x + 15] ^ s[x + 20];
      for (x = 0; x < 5; x++) {
        var d = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1);
        for (y = 0; y < 5; y++) s[x + 5 * y] ^= d;
      }
      for (x = 0; x < 5; x++) {
        for (y = 0; y < 5; y++) b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(s[x + 5 * y], ROTATIONS[x + 5 * y]);
      }
      for (x = 0; x < 5; x++) {
        for (y = 0; y < 5; y++) {
          s[x + 5 * y] = b[x + 5 * y] ^ (~b[((x + 1) % 5) + 5 * y] & MASK & b[((x + 2) % 5) + 5 * y]);
        }
      }
      s[0] ^= ROUND_CONSTANTS[round];
    }
  }

  function keccak256(bytes) {
    var rate = 136;
    var padded = new Uint8Array(Math.floor(bytes.length / rate + 1) * rate);
    padded.set(bytes);
    padded[bytes.length] ^= 0x01; // Keccak's padding (not SHA-3's 0x06)
    padded[padded.length - 1] ^= 0x80;
    var s = new Array(25).fill(0n);
    for (var offset = 0; offset < padded.length; offset += rate) {
      for (var i = 0; i < rate / 8; i++) {
        var lane = 0n;
        for (var k = 7; k >= 0; k--) lane = (lane << 8n) | BigInt(padded[offset + i * 8 + k]);
        s[i] ^= lane;
      }
      keccakF(s);
    }
    var hex = "";
    for (var w = 0; w < 4; w++) {
      for (var byte = 0; byte < 8; byte++) {
        hex += Number((s[w] >> BigInt(8 * byte)) & 0xffn)
          .toString(16)
          .padStart(2, "0");
      }
    }
    return hex;
  }

  function checksumAddress(address) {
    var hex = String(address).toLowerCase().replace(/^0x/, "");
    if (!/^[0-9a-f]{40}$/.test(hex)) throw new Error("The wallet returned an address that is not valid.");
    var hash = keccak256(new TextEncoder().encode(hex));
    var out = "0x";
    for (var i = 0; i < 40; i++) out += parseInt(hash[i], 16) >= 8 ? hex[i].toUpperCase() : hex[i];
    return out;
  }

  // --- the EIP-4361 message ---------------------------------------------------------------
  function siweMessage(fields) {
    return [
      window.location.host + " wants you to sign in with your Ethereum account:",
      fields.address,
      "",
      "Sign in to matchplatform.",
      "",
      "URI: " + window.location.origin,
      "Version: 1",
      "Chain ID: " + fields.chainId,
      "Nonce: " + fields.nonce,
      "Issued At: " + new Date().toISOString(),
    ].join("\n");
  }

  function utf8Hex(text) {
    var bytes = new TextEncoder().encode(text);
    var hex = "0x";
    for (var i = 0; i < bytes.length; i++) hex += bytes[i].toString(16).padStart(2, "0");
    return hex;
  }

  // --- the flow ---------------------------------------------------------------------------
  function setError(message) {
    errorBox.textContent = message || "";
    MP.show(errorBox, Boolean(message));
  }

  function setBusy(busy, label) {
    button.disabled = busy;
    button.setAttribute("aria-busy", busy ? "true" : "false");
    if (busy) button.textContent = label;
    else button.innerHTML = LABEL;
  }

  function walletError(error) {
    if (error && (error.code === 4001 || error.code === "ACTION_REJECTED")) {
      return "You cancelled the request in your wallet. Nothing was signed.";
    }
    if (error && error.code === -32002) return "Your wallet is already waiting for you: open it to continue.";
    return (error && error.message) || "Your wallet could not complete the request.";
  }

  function apiOrThrow(result) {
    if (!result.ok) {
      var failure = new Error(MP.errorMessage(result));
      failure.fromApi = true;
      throw failure;
    }
    return result.body;
  }

  async function signIn() {
    var ethereum = window.ethereum;
    setError("");
    setBusy(true, "Waiting for your wallet…");
    try {
      var accounts = await ethereum.request({ method: "eth_requestAccounts" });
      if (!accounts || !accounts.length) throw new Error("Your wallet did not share an account.");
      var address = checksumAddress(accounts[0]);
      var chainHex = await ethereum.request({ method: "eth_chainId" });
      var chainId = parseInt(chainHex, 16);
      if (!(chainId > 0)) throw new Error("Your wallet did not say which chain it is on.");

      var nonce = apiOrThrow(await MP.api("POST", nonceUrl)).nonce;
      var message = siweMessage({ address: address, chainId: chainId, nonce: nonce });
      setBusy(true, "Sign the message in your wallet…");
      var signature = await ethereum.request({ method: "personal_sign", params: [utf8Hex(message), address] });

      setBusy(true, "Signing you in…");
      apiOrThrow(await MP.api("POST", siweUrl, { message: message, signature: signature }));
      window.location.assign(nextUrl);
    } catch (error) {
      setBusy(false);
      setError(error && error.fromApi ? error.message : walletError(error));
    }
  }

  function enable() {
    if (!window.ethereum || typeof window.ethereum.request !== "function") return false;
    button.disabled = false;
    note.textContent = "Your wallet asks you to sign a message: it costs nothing and sends no transaction.";
    return true;
  }

  button.addEventListener("click", function () {
    if (window.ethereum) signIn();
  });

  if (!enable()) {
    note.textContent = "No Ethereum wallet was found in this browser. Install a wallet extension to sign in with it, or use your password.";
    // Some wallets inject themselves a moment after the page loads.
    window.addEventListener("ethereum#initialized", enable, { once: true });
  }
})();
