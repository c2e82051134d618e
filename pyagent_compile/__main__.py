from pyagent_compile.cli import main

raise SystemExit(main())
