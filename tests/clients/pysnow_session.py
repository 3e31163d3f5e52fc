"""A session of pysnow (a widely used third-party ServiceNow client, PyPI ``pysnow``) against a ServiceNow
Table API, exactly as it would run against an instance: run in its own virtualenv (.venv-clients, made by
scripts/bootstrap.sh), it prints what it saw as JSON. tests/change_service/test_off_the_shelf_client.py runs
it against the built-in change service.

    .venv-clients/bin/python tests/clients/pysnow_session.py HOST:PORT INTEGRATION_USER PASSWORD ADMIN PASSWORD [https]

Against a real instance (a personal developer instance: it creates 25 change requests and deletes one), give
its host and ``https``; the output is the same JSON, to compare with the built-in service's.
"""

import json
import sys

import pysnow


def main(host: str, user: str, password: str, admin: str, admin_password: str, scheme: str = "http") -> None:
    ssl = scheme == "https"
    client = pysnow.Client(host=host, user=user, password=password, use_ssl=ssl)
    changes = client.resource(api_path="/table/change_request")
    seen: dict = {}
    created = [
        changes.create(
            payload={"short_description": f"shop {n}", "correlation_id": f"shop:{n}", "risk": str(n % 3)}
        ).one()
        for n in range(25)
    ]
    seen["numbers"] = [c["number"] for c in created]
    seen["by_correlation"] = [c["number"] for c in changes.get(query={"correlation_id": "shop:7"}).all()]
    query = (
        pysnow.QueryBuilder()
        .field("risk")
        .equals("1")
        .AND()
        .field("short_description")
        .starts_with("shop 1")
        .OR()
        .field("short_description")
        .ends_with("2")
        .AND()
        .field("number")
        .order_descending()
    )
    seen["built_query"] = str(query)
    seen["query_builder"] = [c["number"] for c in changes.get(query=query).all()]
    pages = []
    for offset in range(0, 25, 10):
        response = changes.get(query={}, limit=10, offset=offset)
        pages.append([c["number"] for c in response.all()])
        seen["total"] = response._response.headers.get("X-Total-Count")
    seen["pages"] = pages
    first = {"number": created[0]["number"]}
    seen["updated"] = changes.update(query=first, payload={"state": "-4", "work_notes": "assessed"})["state"]
    seen["fields"] = changes.get(query={"number": created[1]["number"]}, fields=["number", "state", "nonsense"]).one()
    as_admin = pysnow.Client(host=host, user=admin, password=admin_password, use_ssl=ssl)
    seen["deleted"] = as_admin.resource(api_path="/table/change_request").delete(query={"number": created[2]["number"]})
    seen["after_delete"] = len(list(changes.get(query={}).all()))
    approvals = client.resource(api_path="/table/sysapproval_approver")
    seen["approvals"] = list(approvals.get(query={"sysapproval": created[0]["sys_id"]}).all())
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:7])
