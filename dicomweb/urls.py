app_name = "dicomweb"
urlpatterns = []
