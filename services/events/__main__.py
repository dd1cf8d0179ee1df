from services.events.app import main

main()
