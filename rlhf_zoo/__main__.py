from rlhf_zoo.cli import main

raise SystemExit(main())
