"""The admin console's personal access tokens: every user's tokens and usage, revoke, policy."""

from __future__ import annotations

from flask import abort
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue

from idp import db
from idp.admin.views.base import PAGE_SIZE
from idp.admin.views.base import back
from idp.admin.views.base import bp
from idp.admin.views.base import current_admin_login
from idp.admin.views.base import int_arg
from idp.admin.views.base import page_of
from idp.admin.views.base import require_recent_login
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.models.token import PersonalAccessToken
from idp.settings import PAT_SCOPES
from idp.tokens import service as pats
from idp.tokens import usage
from idp.users import service as users

# -- personal access tokens ------------------------------------------------------------------


def _policy_change(user_id: int) -> str:
    """Apply the policy form; return the flash message.

    Raises:
        InvalidInputError: a lifetime that is not a number in range, or no allowed scope.

    """
    lifetime = request.form.get("max_lifetime", "")
    if not lifetime.isdigit() or len(lifetime) > 4:
        raise InvalidInputError("the maximum lifetime is a number of days")
    pats.set_policy(
        enabled=request.form.get("enabled") == "yes",
        max_lifetime=int(lifetime),
        allow_no_expiry=request.form.get("allow_no_expiry") == "yes",
        allowed_scopes=request.form.getlist("scope"),
        actor=users.require_user(user_id),
    )
    return "The personal access token policy is saved."


def _require_pat(token_id: str) -> PersonalAccessToken:
    try:
        if not token_id.isdigit() or len(token_id) > 9:
            raise NotFoundError(token_id)
        return pats.require_token(int(token_id))
    except NotFoundError:
        abort(404, description="There is no such token.")


@bp.route("/tokens", methods=["GET", "POST"])
def tokens_page() -> ResponseReturnValue:
    email = request.args.get("user", "").strip()[:320] or None
    try:
        user = users.require_user_by_email(email) if email else None
    except NotFoundError:
        abort(404, description="There is no such user.")
    error = None
    if request.method == "POST":
        action = request.form.get("action")
        if action == "revoke":
            row = _require_pat(request.form.get("id", ""))
            if pats.revoke_token(row, reason="admin_revoked"):
                return back(f"Token {row.prefix}… of {row.user.email} is revoked.")
            return back(f"Token {row.prefix}… was already revoked.")
        if action in ("policy", "reset_policy"):
            # Turning tokens off (or widening them) is as sensitive as rotating the keys.
            again = require_recent_login()
            if again is not None:
                return again
            if action == "reset_policy":
                pats.reset_policy(users.require_user(current_admin_login().user_id))
                return back("The policy is the configuration's again.")
            try:
                return back(_policy_change(current_admin_login().user_id))
            except InvalidInputError as problem:
                error = f"Policy: {problem}."
        else:
            abort(400, description="Choose a token or the policy.")
    rows = pats.list_tokens(user, after=int_arg("after"), limit=PAGE_SIZE + 1)
    page, after = page_of(rows, "id")
    page_html = render_template(
        "admin/tokens.html",
        user=user,
        tokens=page,
        after=after,
        now=db.now(),
        policy=pats.get_policy(),
        scopes=PAT_SCOPES,
        max_lifetime=pats.MAX_POLICY_LIFETIME,
        error=error,
    )
    return page_html, 400 if error else 200


@bp.route("/tokens/<token_id>")
def token_page(token_id: str) -> ResponseReturnValue:
    row = _require_pat(token_id)
    return render_template(
        "admin/token.html",
        token=row,
        uses=usage.recent_usage(usage.PAT, row.id),
        now=db.now(),
    )
