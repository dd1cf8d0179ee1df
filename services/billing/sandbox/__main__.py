from services.billing.sandbox.server import main

main()
