from seconetbench.cli import main

raise SystemExit(main())
