"""``idp sp add|list``: register SAML service providers from their metadata."""

from __future__ import annotations

from pathlib import Path

import click

from idp.cli_support import IdpGroup
from idp.cli_support import echo_json
from idp.errors import InvalidInputError
from idp.saml import storage
from idp.saml.registration import register_sp_metadata

cli = IdpGroup("sp", help="Manage SAML service providers.")


@cli.command("add")
@click.option(
    "--metadata",
    "metadata_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The SP's SAML metadata XML file.",
)
@click.option("--name", default=None, help="Display name (default: from the metadata).")
@click.option(
    "--name-id-format",
    default=None,
    help="persistent, emailAddress, transient or unspecified (default: the first the "
    "metadata lists, else persistent; emailAddress and unspecified need mail released).",
)
@click.option(
    "--attribute",
    "attributes",
    multiple=True,
    help="Release only this attribute (mail, displayName, givenName, sn, isMemberOf); repeat.",
)
@click.option("--sign-response/--no-sign-response", default=True, show_default=True)
@click.option("--sign-assertion/--no-sign-assertion", default=True, show_default=True)
@click.option(
    "--encrypt-assertion/--no-encrypt-assertion",
    default=None,
    help="Default: when the metadata publishes an encryption key.",
)
@click.option(
    "--relay-state",
    "relay_states",
    multiple=True,
    help="A RelayState allowed in IdP-initiated logins; repeat.",
)
@click.option("--replace", is_flag=True, help="Update the SP if it is already registered.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def add(
    metadata_file: Path,
    name: str | None,
    name_id_format: str | None,
    attributes: tuple[str, ...],
    sign_response: bool,
    sign_assertion: bool,
    encrypt_assertion: bool | None,
    relay_states: tuple[str, ...],
    replace: bool,
    as_json: bool,
) -> None:
    """Register a SAML service provider from its metadata and print its entity ID."""
    try:
        metadata = metadata_file.read_bytes()
    except OSError as error:
        raise InvalidInputError(f"cannot read {metadata_file}: {error.strerror}") from None
    entity_id = register_sp_metadata(
        metadata,
        replace=replace,
        name=name,
        name_id_format=name_id_format,
        attributes=list(attributes) or None,
        sign_response=sign_response,
        sign_assertion=sign_assertion,
        encrypt_assertion=encrypt_assertion,
        relay_states=relay_states,
    )
    if as_json:
        echo_json({"entity_id": entity_id})
        return
    click.echo(f"entity_id: {entity_id}")


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def list_(as_json: bool) -> None:
    """List SAML service providers."""
    rows = [
        {
            "entity_id": sp.entity_id,
            "name": sp.name,
            "acs_urls": [endpoint["location"] for endpoint in sp.acs_endpoints],
            "name_id_format": sp.name_id_format,
            "attributes": sp.attributes,
            "sign_response": sp.sign_response,
            "sign_assertion": sp.sign_assertion or sp.want_assertions_signed,
            "encrypt_assertion": sp.encrypt_assertion,
            "relay_states": sp.relay_states,
            "disabled": sp.is_disabled,
        }
        for sp in storage.list_service_providers()
    ]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No service providers.")
    for row in rows:
        click.echo(f"{row['entity_id']}\t{row['name']}")


def register(parent: click.Group) -> None:
    """Mount ``idp sp`` on the command line (``create_app`` calls this)."""
    parent.add_command(cli)
