from services.content.app import main

main()
