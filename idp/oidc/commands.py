"""``idp client add|list``."""

from __future__ import annotations

from pathlib import Path

import click

from idp.cli_support import IdpGroup
from idp.cli_support import echo_json
from idp.cli_support import read_stdin_line
from idp.errors import InvalidInputError
from idp.oidc import storage
from idp.oidc.clients import AUTH_METHODS
from idp.oidc.clients import DEFAULT_SCOPE
from idp.oidc.clients import ID_TOKEN_ALGS
from idp.oidc.clients import ClientSpec
from idp.oidc.clients import load_jwks
from idp.oidc.clients import register_client

cli = IdpGroup("client", help="Manage OpenID Connect clients.")


@cli.command("add")
@click.argument("name")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="A redirect URI (exact match); repeat for several (none for --service-account).",
)
@click.option("--public", is_flag=True, help="A public client: no secret, PKCE required.")
@click.option("--trusted", is_flag=True, help="Skip the consent page for this client.")
@click.option(
    "--resource-server",
    is_flag=True,
    help="An API that may introspect any token (others introspect only their own).",
)
@click.option(
    "--auth-method",
    type=click.Choice(AUTH_METHODS[:-1]),
    default=None,
    help="Token endpoint authentication (default client_secret_basic).",
)
@click.option(
    "--service-account",
    is_flag=True,
    help="A machine client: the client_credentials grant only, for the --scope names.",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="A scope the client may get (admin: the admin API); repeat for several.",
)
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True)
@click.option("--backchannel-logout-uri", default=None)
@click.option("--frontchannel-logout-uri", default=None)
@click.option("--jwks-uri", default=None, help="Where the client publishes its public keys.")
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A file with the client's public JWK Set.",
)
@click.option("--id-token-alg", type=click.Choice(ID_TOKEN_ALGS), default="RS256")
@click.option("--pairwise", is_flag=True, help="Give this client pairwise subject identifiers.")
@click.option("--client-id", default=None, help="Choose the client_id (default: random).")
@click.option("--secret-stdin", is_flag=True, help="Read the client secret from stdin.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def add(
    name: str,
    redirect_uris: tuple[str, ...],
    public: bool,
    trusted: bool,
    resource_server: bool,
    auth_method: str | None,
    service_account: bool,
    scopes: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...],
    backchannel_logout_uri: str | None,
    frontchannel_logout_uri: str | None,
    jwks_uri: str | None,
    jwks_file: Path | None,
    id_token_alg: str,
    pairwise: bool,
    client_id: str | None,
    secret_stdin: bool,
    as_json: bool,
) -> None:
    """Register an OpenID Connect client and print its credentials."""
    if public and auth_method:
        raise click.UsageError("--public and --auth-method exclude each other")
    if service_account and (public or redirect_uris):
        raise click.UsageError("a --service-account has no --redirect-uri and is not --public")
    if service_account and not scopes:
        raise click.UsageError("a --service-account needs at least one --scope")
    if not service_account and not redirect_uris:
        raise click.UsageError("Missing option '--redirect-uri'.")
    jwks = None
    if jwks_file is not None:
        try:
            jwks = load_jwks(jwks_file.read_text())
        except OSError as error:
            raise InvalidInputError(f"cannot read {jwks_file}: {error.strerror}") from None
    secret = read_stdin_line("secret") if secret_stdin else None
    client, issued_secret = register_client(
        ClientSpec(
            client_name=name,
            redirect_uris=list(redirect_uris),
            token_endpoint_auth_method="none" if public else auth_method or "client_secret_basic",
            is_trusted=trusted,
            is_resource_server=resource_server,
            is_service_account=service_account,
            # A service account gets exactly the scopes named; another client gets them too.
            scope=" ".join(scopes if service_account else (DEFAULT_SCOPE, *scopes)),
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            backchannel_logout_uri=backchannel_logout_uri,
            frontchannel_logout_uri=frontchannel_logout_uri,
            jwks=jwks,
            jwks_uri=jwks_uri,
            id_token_signed_response_alg=id_token_alg,
            subject_type="pairwise" if pairwise else "public",
            client_id=client_id,
            client_secret=secret,
        )
    )
    if as_json:
        result = {"client_id": client.client_id}
        if issued_secret is not None:
            result["client_secret"] = issued_secret
        echo_json(result)
        return
    click.echo(f"client_id: {client.client_id}")
    if issued_secret is not None:
        click.echo(f"client_secret: {issued_secret}")
        click.echo("The secret is shown once; only its hash is stored.")


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def list_(as_json: bool) -> None:
    """List OpenID Connect clients."""
    rows = [
        {
            "client_id": client.client_id,
            "name": client.client_name,
            "auth_method": client.token_endpoint_auth_method,
            "trusted": client.is_trusted,
            "resource_server": client.is_resource_server,
            "redirect_uris": client.redirect_uris,
        }
        for client in storage.list_clients()
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        roles = [role for role in ("trusted", "resource_server") if row[role]]
        line = f"{row['client_id']}\t{row['name']}\t{row['auth_method']}"
        click.echo(f"{line}\t{','.join(roles)}" if roles else line)


def register(parent: click.Group) -> None:
    """Mount ``idp client`` on the command line (``create_app`` calls this)."""
    parent.add_command(cli)
