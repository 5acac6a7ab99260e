"""The admin API's apps: OIDC clients and SAML service providers."""

from __future__ import annotations

from typing import Any

from idp.admin import schemas
from idp.admin.api.routing import page_of
from idp.admin.api.routing import route
from idp.oidc import clients
from idp.saml import registration as sps

CLIENT: dict[str, Any] = {"path_params": {"client_id": str}, "tag": "clients"}


@route(
    "GET",
    "/clients",
    "List OIDC clients",
    query=schemas.Query,
    response=schemas.ClientList,
    tag="clients",
)
def list_clients(query: schemas.Query) -> schemas.ClientList:
    page, cursor = page_of(
        query, lambda after, limit: clients.list_clients(after=after, limit=limit)
    )
    return schemas.ClientList(items=[schemas.Client.of(client) for client in page], next=cursor)


@route(
    "POST",
    "/clients",
    "Register an OIDC client (or a service account)",
    status=201,
    body=schemas.ClientCreate,
    response=schemas.ClientCreated,
    errors=(409,),
    tag="clients",
)
def create_client(body: schemas.ClientCreate) -> schemas.ClientCreated:
    scope = body.scope if body.scope is not None else clients.DEFAULT_SCOPE.split()
    client, secret = clients.register_client(
        clients.ClientSpec(
            client_name=body.client_name,
            redirect_uris=body.redirect_uris,
            token_endpoint_auth_method=body.token_endpoint_auth_method,
            is_trusted=body.trusted,
            is_resource_server=body.resource_server,
            is_service_account=body.service_account,
            scope=" ".join(scope),
            post_logout_redirect_uris=body.post_logout_redirect_uris,
            backchannel_logout_uri=body.backchannel_logout_uri,
            frontchannel_logout_uri=body.frontchannel_logout_uri,
            jwks_uri=body.jwks_uri,
            id_token_signed_response_alg=body.id_token_signed_response_alg,
            subject_type=body.subject_type,
            client_id=body.client_id,
        )
    )
    return schemas.ClientCreated(**schemas.Client.fields_of(client), client_secret=secret)


@route("GET", "/clients/{client_id}", "Get an OIDC client", response=schemas.Client, **CLIENT)
def get_client(client_id: str) -> schemas.Client:
    return schemas.Client.of(clients.require_client(client_id))


@route(
    "PATCH",
    "/clients/{client_id}",
    "Update an OIDC client; disabled: true also revokes its tokens",
    body=schemas.ClientUpdate,
    response=schemas.Client,
    **CLIENT,
)
def update_client(client_id: str, body: schemas.ClientUpdate) -> schemas.Client:
    client = clients.require_client(client_id)
    change = clients.ClientUpdate(
        **body.model_dump(exclude={"trusted", "disabled"}),
        is_trusted=body.trusted,
        is_disabled=body.disabled,
        unset={name for name in body.model_fields_set if getattr(body, name) is None},
    )
    return schemas.Client.of(clients.update_client(client, change))


@route(
    "POST",
    "/clients/{client_id}/secret",
    "Rotate the client secret (the old one stops working)",
    response=schemas.ClientSecret,
    errors=(409,),
    **CLIENT,
)
def rotate_secret(client_id: str) -> schemas.ClientSecret:
    secret = clients.rotate_client_secret(clients.require_client(client_id))
    return schemas.ClientSecret(client_id=client_id, client_secret=secret)


@route(
    "DELETE",
    "/clients/{client_id}",
    "Delete an OIDC client",
    status=204,
    description="Its tokens end at once (introspection: inactive; refresh: refused).",
    **CLIENT,
)
def delete_client(client_id: str) -> None:
    clients.delete_client(clients.require_client(client_id))


SP: dict[str, Any] = {"path_params": {"id": int}, "tag": "service-providers"}


@route(
    "GET",
    "/service-providers",
    "List SAML service providers",
    query=schemas.Query,
    response=schemas.ServiceProviderList,
    tag="service-providers",
)
def list_service_providers(query: schemas.Query) -> schemas.ServiceProviderList:
    page, cursor = page_of(
        query, lambda after, limit: sps.list_service_providers(after=after, limit=limit)
    )
    return schemas.ServiceProviderList(
        items=[schemas.ServiceProvider.of(sp) for sp in page], next=cursor
    )


@route(
    "POST",
    "/service-providers",
    "Register a SAML SP from its metadata XML (the request body)",
    status=201,
    xml_body=True,
    response=schemas.ServiceProvider,
    errors=(409,),
    tag="service-providers",
)
def import_service_provider(body: bytes) -> schemas.ServiceProvider:
    entity_id = sps.register_sp_metadata(body)
    return schemas.ServiceProvider.of(sps.require_service_provider_by_entity_id(entity_id))


@route(
    "GET",
    "/service-providers/{id}",
    "Get a SAML service provider",
    response=schemas.ServiceProvider,
    **SP,
)
def get_service_provider(id: int) -> schemas.ServiceProvider:
    return schemas.ServiceProvider.of(sps.require_service_provider(id))


@route(
    "PATCH",
    "/service-providers/{id}",
    "Change the released attributes and the NameID format",
    body=schemas.ServiceProviderUpdate,
    response=schemas.ServiceProvider,
    **SP,
)
def update_service_provider(
    id: int, body: schemas.ServiceProviderUpdate
) -> schemas.ServiceProvider:
    sp = sps.update_sp_settings(
        sps.require_service_provider(id),
        attributes=body.attributes,
        release_all="attributes" in body.model_fields_set and body.attributes is None,
        name_id_format=body.name_id_format,
    )
    return schemas.ServiceProvider.of(sp)


@route("DELETE", "/service-providers/{id}", "Delete a SAML service provider", status=204, **SP)
def delete_service_provider(id: int) -> None:
    sps.delete_service_provider(sps.require_service_provider(id))
