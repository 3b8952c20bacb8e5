from kerlym.main import command

raise SystemExit(command())
