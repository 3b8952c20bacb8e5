from kerlym.main import main

raise SystemExit(main())
