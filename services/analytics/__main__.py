from services.analytics.app import main

main()
