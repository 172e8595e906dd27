"""`python -m flcore users`: the users file of password sign-in."""

from __future__ import annotations

import argparse
import sys

from flcore.cli.args import UsageError


def cmd_users(args: argparse.Namespace) -> int:
    """Manage the users file of a server's password sign-in."""
    import getpass

    from flcore import settings
    from flcore.auth import Users

    path = args.file or settings.current().users_file
    if path is None:
        raise UsageError("name the users file with --file (or set FLCORE_USERS to it)")
    users = Users(path)
    if args.action == "list":
        for name, record in sorted(users.load().items()):
            print(name + ("  (admin)" if record.get("admin") else ""))
        return 0
    if not args.name:
        raise UsageError(f"`users {args.action}` needs a user name")
    if args.action == "remove":
        users.remove(args.name)
        print(f"removed {args.name} from {users.path}")
        return 0
    password = args.password_stdin and sys.stdin.readline().rstrip("\n")
    if not password:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ; nothing was changed")
    users.add(args.name, password, admin=args.admin)
    print(f"{args.name} can now sign in{' (admin)' if args.admin else ''}; users file: {users.path}")
    return 0
