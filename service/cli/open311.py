"""``python -m service open311 key add NAME | key list | key revoke NAME``: API keys of Open311 clients (the
city's citizen portal). A new key is printed once; only its sha256 is stored."""

from __future__ import annotations

import argparse
import json
from typing import Any

from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.open311 import add_client, list_clients, revoke_client
from service.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("open311", help="Open311 clients (citizen portals) and their API keys")
    osub = p.add_subparsers(dest="object", required=True)
    p = osub.add_parser("key", help="API keys: add (printed once), list, revoke")
    ksub = p.add_subparsers(dest="action", required=True)
    ksub.add_parser("add", help="add a client and print its API key (shown once)").add_argument("name")
    ksub.add_parser("list", help="all clients (never keys)")
    ksub.add_parser("revoke", help="the client's key stops working at once").add_argument("name")


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            if args.action == "add":
                client, key = add_client(session, args.name)
                print(json.dumps({"name": client.name, "api_key": key}))
            elif args.action == "revoke":
                client = revoke_client(session, args.name)
                print(json.dumps({"name": client.name, "active": client.active}))
            else:
                for client in list_clients(session):
                    row = {
                        "name": client.name,
                        "active": client.active,
                        "created_at": client.created_at.isoformat(),
                    }
                    print(json.dumps(row))
    finally:
        engine.dispose()
    return 0
