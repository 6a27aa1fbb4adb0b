from stackctl.cli.app import main

main()
