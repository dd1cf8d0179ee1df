from services.members.app import main

main()
