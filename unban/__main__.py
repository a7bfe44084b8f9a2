from unban.cli import main

main()
