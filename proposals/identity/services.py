"""Writes of the identity sub-domain: members and their profiles, wallet sign-in (its nonces,
linking a wallet, the member a wallet signs in), API tokens and the demo staff account.
Every public function owns its transaction. The Sign-In with Ethereum message itself
(parsing, times, signature) is checked in ``siwe``, which writes nothing."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import BooleanField, ExpressionWrapper, ForeignObjectRel, Q
from django.db.models.functions import Now
from rest_framework.authtoken.models import Token

from matchplatform.exceptions import ApplicationError, Conflict, ErrorCode, Forbidden, InvalidInput
from proposals.identity.siwe import nonce_new, siwe_verify
from proposals.models import Profile, WalletNonce
from proposals.vocab import INTERESTS, interest_mask


def profile_update(
    *,
    user: User,
    display_name: str | None = None,
    bio: str | None = None,
    interests: Iterable[str] | None = None,
    privacy: str | None = None,
    is_active: bool | None = None,
) -> Profile:
    """Change the fields given (None leaves a field as it is) and nothing else: the update
    names only those columns, so a concurrent change to any other field of the profile (the
    voting loop's ``open_assignments``, a wallet sign-in's ``wallet_address``) is never
    written back stale. Creates the profile if the member has none."""
    changes: dict[str, Any] = {}
    if display_name is not None:
        if not display_name.strip():
            raise InvalidInput(
                "Display name must not be empty.", code=ErrorCode.REQUIRED, fields={"display_name": ["Required."]}
            )
        changes["display_name"] = display_name.strip()[:80]
    if bio is not None:
        changes["bio"] = bio[:2000]
    if interests is not None:
        values = sorted(set(interests), key=lambda v: INTERESTS.index(v) if v in INTERESTS else len(INTERESTS))
        unknown = [v for v in values if v not in INTERESTS]
        if unknown:
            message = f"Unknown interests: {', '.join(unknown[:5])}."
            raise InvalidInput(message, code=ErrorCode.INVALID_CHOICE, fields={"interests": [message]})
        changes["interests"] = values
        changes["interest_mask"] = interest_mask(values)
    if privacy is not None:
        if privacy not in Profile.Privacy.values:
            raise InvalidInput(
                "Unknown privacy setting.", code=ErrorCode.INVALID_CHOICE, fields={"privacy": ["Invalid."]}
            )
        changes["privacy"] = privacy
    if is_active is not None:
        changes["is_active"] = bool(is_active)
    with transaction.atomic():
        profile, created = Profile.objects.get_or_create(
            user=user, defaults={"display_name": str(user)[:80], **changes}
        )
        if not created and changes:
            Profile.objects.filter(pk=profile.pk).update(**changes)
            for field, value in changes.items():
                setattr(profile, field, value)
    return profile


def wallet_nonces_prune() -> int:
    """Drop nonces that can no longer be used: spent, or expired for over a day."""
    deleted, _ = WalletNonce.objects.filter(
        Q(used_at__isnull=False) | Q(expires_at__lt=Now() - timedelta(days=1))
    ).delete()
    return deleted


def member_create(*, username: str, password: str | None = None, **profile: Any) -> User:
    """A user with a profile (seeding, tests, sign-up)."""
    User = get_user_model()  # noqa: N806
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password)
            profile_update(user=user, display_name=profile.pop("display_name", username), **profile)
    except IntegrityError:
        raise Conflict("That username is taken.", code=ErrorCode.USERNAME_TAKEN) from None
    return user


# -- wallet sign-in (Sign-In with Ethereum; the message itself is checked in siwe.py) ------------
def wallet_nonce_issue() -> WalletNonce:
    """A fresh single-use nonce. Its expiry is computed by the database, the same clock
    that later decides whether it has expired."""
    ttl = timedelta(seconds=settings.SIWE_NONCE_TTL_SECONDS)
    value = nonce_new()
    with transaction.atomic():
        nonce = WalletNonce.objects.create(nonce=value, expires_at=Now() + ttl)
        nonce.refresh_from_db(fields=["created_at", "expires_at"])
    return nonce


def _nonce_consume(*, nonce: str) -> None:
    """Mark the nonce used, atomically: of any number of concurrent sign-ins carrying the
    same nonce, the row lock lets exactly one update it."""
    consumed = WalletNonce.objects.filter(nonce=nonce, used_at__isnull=True, expires_at__gt=Now()).update(used_at=Now())
    if consumed == 1:
        return
    row = (
        WalletNonce.objects.filter(nonce=nonce)
        .annotate(expired=ExpressionWrapper(Q(expires_at__lte=Now()), output_field=BooleanField()))
        .values("used_at", "expired")
        .first()
    )
    if row is None:
        raise Forbidden("This nonce was not issued by this site.", code=ErrorCode.SIWE_NONCE_UNKNOWN)
    if row["used_at"] is not None:
        raise Forbidden("This nonce has already been used.", code=ErrorCode.SIWE_NONCE_USED)
    raise Forbidden("This nonce has expired; ask for a new one.", code=ErrorCode.SIWE_NONCE_EXPIRED)


def _short_address(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def _profile_fresh(user: User) -> None:
    # Writes here go through expressions (Now()) and queryset updates; drop any profile
    # cached on the user so callers read what the database holds.
    rel = user._meta.get_field("profile")
    if isinstance(rel, ForeignObjectRel) and rel.is_cached(user):
        rel.delete_cached_value(user)


def _wallet_link(*, user: User, address: str) -> User | ApplicationError:
    if Profile.objects.filter(wallet_address=address).exclude(user=user).exists():
        return Conflict("This wallet is linked to another member.", code=ErrorCode.WALLET_TAKEN)
    profile = Profile.objects.select_for_update(no_key=True).filter(user=user).first()
    if profile is not None and profile.wallet_address and profile.wallet_address != address:
        # Replacing a verified wallet is a separate, deliberate action, not a side effect
        # of signing in.
        return Conflict("Your account is already linked to another wallet.", code=ErrorCode.WALLET_ALREADY_LINKED)
    try:
        with transaction.atomic():
            if profile is None:
                Profile.objects.create(
                    user=user,
                    display_name=(user.get_full_name() or user.get_username())[:80],
                    wallet_address=address,
                    wallet_verified_at=Now(),
                )
            else:
                Profile.objects.filter(pk=profile.pk).update(wallet_address=address, wallet_verified_at=Now())
    except IntegrityError:
        # Another member linked the same wallet concurrently (or this user's profile was
        # created concurrently); the unique constraints decided, not a read.
        if Profile.objects.filter(wallet_address=address).exclude(user=user).exists():
            return Conflict("This wallet is linked to another member.", code=ErrorCode.WALLET_TAKEN)
        return Conflict("Your profile changed while linking; try again.", code=ErrorCode.PROFILE_CONFLICT)
    _profile_fresh(user)
    return user


def _wallet_member(*, address: str) -> User | ApplicationError:
    """The member who owns the wallet, created on first sign-in."""
    UserModel = get_user_model()  # noqa: N806
    base = address.lower()
    for username in (base, f"{base}-{secrets.token_hex(3)}", f"{base}-{secrets.token_hex(6)}"):
        profile = Profile.objects.select_related("user").filter(wallet_address=address).first()
        if profile is not None:
            if not profile.user.is_active:
                return Forbidden("This account is disabled.", code=ErrorCode.ACCOUNT_DISABLED)
            return profile.user
        try:
            with transaction.atomic():
                # No usable password: this member signs in with the wallet only.
                user = UserModel.objects.create_user(username=username)
                Profile.objects.create(
                    user=user,
                    display_name=_short_address(address),
                    wallet_address=address,
                    wallet_verified_at=Now(),
                )
        except IntegrityError:
            # Either a concurrent first sign-in of the same wallet won (the loop finds its
            # profile next) or a password member already has this username (next name).
            continue
        _profile_fresh(user)
        return user
    return Conflict("Could not create a member for this wallet; try again.", code=ErrorCode.MEMBER_CONFLICT)


def wallet_sign_in(*, message: str, signature: str, domain: str, user: User | None = None) -> User:
    """Verify a signed EIP-4361 message and return the member it signs in.

    ``domain`` is the host the request reached (never a value from the message). With
    ``user`` (a member already signed in), the wallet is linked to that member instead."""
    parsed, signer = siwe_verify(message=message, signature=signature, domain=domain)

    with transaction.atomic():
        _nonce_consume(nonce=parsed.nonce)
        outcome = _wallet_link(user=user, address=signer) if user is not None else _wallet_member(address=signer)
    # A refusal after the nonce was consumed still commits the consumption: a verified
    # message is single-use whatever came of it.
    if isinstance(outcome, ApplicationError):
        raise outcome
    return outcome


# -- API tokens (DRF authtoken: one per member, sent as ``Authorization: Token <key>``) -----------
def api_token_issue(*, user: User) -> tuple[Token, bool]:
    """The member's token, created if they have none (and whether it was): signing in again
    hands out the same token, so each program a member runs need not sign in on its own."""
    with transaction.atomic():
        return Token.objects.get_or_create(user=user)


def api_token_revoke(*, user: User) -> bool:
    """Delete the member's token (every program using it is signed out); whether there was one."""
    with transaction.atomic():
        deleted, _ = Token.objects.filter(user=user).delete()
    return deleted > 0


def staff_account_ensure(*, username: str) -> tuple[User, bool]:
    """A superuser named ``username``, created without a usable password (``manage.py
    changepassword`` sets one), and whether it was created. An existing account is left as it is."""
    model = get_user_model()
    with transaction.atomic():
        user = model.objects.filter(username=username).first()
        if user is not None:
            return user, False
        user = model.objects.create_superuser(username=username, email=None, password=None)
    return user, True
