from resumespec.cli import main

raise SystemExit(main())
