from mgrpo.cli import main

raise SystemExit(main())
